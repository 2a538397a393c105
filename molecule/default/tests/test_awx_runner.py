"""The playbooks run the way AWX runs a job: through ansible-runner (the library AWX's job
runs use), in an isolated private data directory, with extra vars only and nobody at a
terminal, the job events read back. A prompt would leave the job waiting: the runner's
timeout turns that into a failure."""

import os

import ansible_runner

from labcheck import PROJECT

# Far more than any of these needs (site.yml's rerun takes about a minute): only a job
# waiting for input reaches it.
JOB_TIMEOUT = 900


def run_job(lab, tmp_path, playbook, extravars=None):
    """(runner, events) of one job."""
    private = tmp_path / ('job-' + os.path.basename(playbook).replace('.yml', ''))
    private.mkdir()
    envvars = {'ANSIBLE_CONFIG': os.path.join(PROJECT, 'ansible.cfg'), 'ANSIBLE_NOCOLOR': '1',
               'PATH': os.path.join(PROJECT, '.venv', 'bin') + os.pathsep + os.environ.get('PATH', ''),
               'PGHA_LAB_DIR': lab.lab_dir}
    runner = ansible_runner.run(private_data_dir=str(private), project_dir=PROJECT, playbook=playbook,
                                inventory=lab.inventory, extravars=extravars or {}, envvars=envvars,
                                timeout=JOB_TIMEOUT, quiet=True)
    events = list(runner.events)
    assert runner.status == 'successful' and runner.rc == 0, (runner.status, runner.stdout.read()[-4000:])
    assert not [e for e in events if e.get('event') == 'playbook_on_vars_prompt'], 'a playbook prompted'
    warnings = [line for line in runner.stdout.read().splitlines() if '[WARNING]' in line]
    assert warnings == [], warnings
    return runner, events


def task_results(events, task_suffix):
    return [e['event_data']['res'] for e in events
            if e.get('event') == 'runner_on_ok' and e['event_data'].get('task', '').endswith(task_suffix)]


def changed_hosts(runner):
    return dict((host, count) for host, count in (runner.stats or {}).get('changed', {}).items() if count)


def test_status_as_a_job_gives_its_json_document(lab, tmp_path):
    runner, events = run_job(lab, tmp_path, 'playbooks/status.yml', {'status_format': 'json'})
    documents = task_results(events, 'Show the status as one JSON document')
    assert len(documents) == 1
    nodes = documents[0]['msg']['nodes']
    assert [row['host'] for row in nodes if row['role'] == 'primary'] == [lab.primary]
    assert changed_hosts(runner) == {}


def test_failover_on_a_healthy_cluster_as_a_job_does_nothing(lab, tmp_path):
    runner, events = run_job(lab, tmp_path, 'playbooks/failover.yml')
    assert changed_hosts(runner) == {}
    said = ' '.join(str(res.get('msg', '')) for res in task_results(events, ''))
    assert 'nothing to do' in said
    assert lab.sql(lab.primary, 'SELECT pg_is_in_recovery()') == 'f'


def test_a_site_rerun_as_a_job_changes_nothing(lab, tmp_path):
    runner, _events = run_job(lab, tmp_path, 'site.yml')
    assert changed_hosts(runner) == {}
    assert sorted(runner.stats['ok']) == sorted(set(lab.database_hosts + lab.groups['pgha_haproxy']
                                                    + lab.groups['pgha_keepalived'] + lab.groups.get('pgha_backup', [])
                                                    + ['localhost']))
