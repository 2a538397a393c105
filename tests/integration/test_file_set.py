"""file_set on a real host (this one, as the postgres user the runner uses): directories
and files made in one call, nothing to do the second time, permissions fixed, check and
diff mode, a failed validation that keeps the current file, force=false."""

import os
import stat

import pytest

from pgharness import chown_pg


@pytest.fixture
def where(workspace, request):
    path = os.path.join(workspace, 'file_set_' + request.node.name)
    os.makedirs(path)
    chown_pg(path)
    return path


def mode(path):
    return oct(stat.S_IMODE(os.stat(path).st_mode))


def read(path):
    with open(path) as handle:
        return handle.read()


def entries(where, conf='port = 5432\n'):
    return [{'path': os.path.join(where, 'etc'), 'state': 'directory', 'mode': '0750'},
            {'path': os.path.join(where, 'etc', 'sub', 'deeper'), 'state': 'directory', 'mode': '0755'},
            {'path': os.path.join(where, 'etc', 'app.conf'), 'content': conf, 'mode': '0640'},
            {'path': os.path.join(where, 'etc', 'script'), 'content': '#!/bin/sh\nexit 0\n', 'mode': '0755'}]


def test_made_in_one_call_then_nothing_to_do(ansible, where):
    result = ansible.run('file_set', {'entries': entries(where)})
    assert result['changed'] is True
    assert result['changed_paths'] == [e['path'] for e in entries(where)]
    assert mode(os.path.join(where, 'etc')) == '0o750'
    assert mode(os.path.join(where, 'etc', 'app.conf')) == '0o640'
    assert mode(os.path.join(where, 'etc', 'script')) == '0o755'
    assert read(os.path.join(where, 'etc', 'app.conf')) == 'port = 5432\n'
    assert [name for name in os.listdir(os.path.join(where, 'etc')) if name.startswith('.pgha-')] == []

    again = ansible.run('file_set', {'entries': entries(where)})
    assert again['changed'] is False and again['changed_paths'] == []

    # Permissions changed by hand are put back; the content is not touched for that.
    os.chmod(os.path.join(where, 'etc', 'app.conf'), 0o666)
    fixed = ansible.run('file_set', {'entries': entries(where)})
    assert fixed['changed_paths'] == [os.path.join(where, 'etc', 'app.conf')]
    assert mode(os.path.join(where, 'etc', 'app.conf')) == '0o640'


def test_check_and_diff_mode_change_nothing(ansible, where):
    ansible.run('file_set', {'entries': entries(where)})
    result = ansible.run('file_set', {'entries': entries(where, conf='port = 5433\n')}, check_mode=True, diff=True)
    assert result['changed_paths'] == [os.path.join(where, 'etc', 'app.conf')]
    assert '-port = 5432' in result['_stdout'] and '+port = 5433' in result['_stdout']
    assert read(os.path.join(where, 'etc', 'app.conf')) == 'port = 5432\n'


def test_a_failed_validation_keeps_the_current_file(ansible, where):
    ansible.run('file_set', {'entries': entries(where)})
    target = os.path.join(where, 'etc', 'app.conf')
    bad = [{'path': target, 'content': 'port = nonsense\n', 'mode': '0640', 'backup': True,
            'validate': "grep -q '^port = [0-9]*$' %s"}]
    result = ansible.run('file_set', {'entries': bad}, expect_failure=True)
    assert 'fails its check' in result['msg'] and 'the current one stays' in result['msg']
    assert read(target) == 'port = 5432\n'
    assert [name for name in os.listdir(os.path.join(where, 'etc')) if name.startswith('.pgha-')] == []

    good = [dict(bad[0], content='port = 6543\n')]
    result = ansible.run('file_set', {'entries': good})
    assert read(target) == 'port = 6543\n'
    assert len(result['backups']) == 1 and read(result['backups'][0]) == 'port = 5432\n'


def test_force_false_writes_only_a_missing_file(ansible, where):
    target = os.path.join(where, 'first.good')
    once = [{'path': target, 'content': 'first\n', 'mode': '0600', 'force': False}]
    assert ansible.run('file_set', {'entries': once})['changed_paths'] == [target]
    later = [dict(once[0], content='second\n')]
    assert ansible.run('file_set', {'entries': later})['changed'] is False
    assert read(target) == 'first\n'


def test_relative_paths_and_files_without_content_are_refused(ansible, where):
    result = ansible.run('file_set', {'entries': [{'path': os.path.join(where, 'x')}]}, expect_failure=True)
    assert 'needs content' in result['msg']
    assert not os.path.exists(os.path.join(where, 'x'))
    result = ansible.run('file_set', {'entries': [{'path': 'relative/x', 'content': 'y\n'}]}, expect_failure=True)
    assert 'must be absolute' in result['msg']


def test_copy_from_a_file_on_the_host_once(ansible, where):
    source = os.path.join(where, 'running.conf')
    with open(source, 'w') as handle:
        handle.write('running\n')
    chown_pg(source)
    target = os.path.join(where, 'running.conf.good')
    keep = [{'path': target, 'copy_from': source, 'force': False, 'mode': '0600'}]
    assert ansible.run('file_set', {'entries': keep})['changed_paths'] == [target]
    assert read(target) == 'running\n' and mode(target) == '0o600'
    with open(source, 'w') as handle:
        handle.write('changed since\n')
    assert ansible.run('file_set', {'entries': keep})['changed'] is False
    assert read(target) == 'running\n'
    both = [{'path': target, 'copy_from': source, 'content': 'x\n'}]
    assert 'mutually exclusive' in ansible.run('file_set', {'entries': both}, expect_failure=True)['msg']
