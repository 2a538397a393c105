"""The repository host after site.yml: the scheduled backups, and the scheduled proof that
the latest backup restores (pgha-verify-backup.timer), started now as the timer would."""

import json

from labcheck import status_document

VERIFY = '/usr/local/lib/pgha-backup/pgha_verify_backup.py'
RESULT = '/var/lib/pgbackrest-verify/last.json'
SCRATCH = '/var/lib/postgresql/pgha-verify'


def repository(lab):
    return lab.host(lab.groups['pgha_backup'][0])


def journal(host, unit):
    return host.run('sudo journalctl -u %s --no-pager -n 40' % unit).stdout


def test_the_backups_and_their_verification_are_scheduled(lab):
    host = repository(lab)
    for timer in ('pgbackrest-backup-full.timer', 'pgbackrest-backup-diff.timer', 'pgha-verify-backup.timer'):
        state = host.run('systemctl show --property=ActiveState,UnitFileState %s' % timer).stdout.split()
        assert sorted(state) == ['ActiveState=active', 'UnitFileState=enabled'], (timer, state)


def test_the_scheduled_verification_restores_the_latest_backup(lab):
    host = repository(lab)
    # A oneshot unit: start returns when the verification ended, and fails when it failed.
    run = host.run('sudo systemctl start pgha-verify-backup.service')
    assert run.rc == 0, journal(host, 'pgha-verify-backup.service')
    result = json.loads(host.run('sudo cat %s' % RESULT).stdout)
    assert result['passed'] is True, result
    assert result['msg'] == 'backup %s of stanza main verified' % result['label']
    assert result['scratch_removed'] is True and result['postgresql_version'].startswith('15')
    assert result['verify']['backups'] and all(b['status'] == 'valid' for b in result['verify']['backups'])
    assert 'verified' in journal(host, 'pgha-verify-backup.service')
    assert host.run('sudo test -e %s' % SCRATCH).rc != 0
    assert host.run('sudo stat -c %%a %s' % RESULT).stdout.strip() == '640'
    # status.yml shows it with the backups.
    shown = status_document(lab)['backup']['backups']['verification']
    assert shown['passed'] is True and shown['label'] == result['label'], shown
    assert shown['finished'] == result['finished'] and 0 <= shown['age_seconds'] < 600, shown


def test_a_verification_that_fails_says_why_and_cleans_up(lab):
    host = repository(lab)
    # pg_class never holds a hundred million rows: a real count below its minimum.
    run = host.run('sudo -u postgres python3 %s --stanza=main --type=immediate '
                   '"--tables=pg_catalog.pg_class=100000000" --result-file=%s' % (VERIFY, RESULT))
    assert run.rc == 1, (run.stdout, run.stderr)
    result = json.loads(run.stdout)
    assert result['passed'] is False
    assert 'pg_catalog.pg_class has' in result['msg'] and 'fewer than the minimum 100000000' in result['msg'], result
    assert result['scratch_removed'] is True
    assert host.run('sudo test -e %s' % SCRATCH).rc != 0
    shown = status_document(lab)['backup']['backups']['verification']
    assert shown['passed'] is False and shown['msg'] == result['msg'], shown
    # The next scheduled run passes again.
    assert host.run('sudo systemctl start pgha-verify-backup.service').rc == 0, journal(host, 'pgha-verify-backup.service')
    assert json.loads(host.run('sudo cat %s' % RESULT).stdout)['passed'] is True
    assert host.run('sudo -u postgres python3 %s --stanza=main --type=sideways' % VERIFY).rc == 2
