"""pgha.multidc.pgbackrest_verify on real servers: a backup restored on the repository host.

A primary archives to a repository "host" reached over pgBackRest's TLS server mode, with
an encrypted repository, and its streaming standby is where the backups are copied from
(backup-standby): backrest_harness.RepositoryHost, the shape the backup role deploys. The
module runs with the repository host's configuration (pg1 and pg2 are remote hosts there),
as postgres, as the playbook runs it. The tests run in file order on one stanza:

- check mode plans and creates nothing;
- a good backup passes, replayed to the end of the archive (the rows written after the
  backup are there), with amcheck; the repository is exactly as it was (the throwaway
  server's promotion archived no history file, no WAL);
- type=immediate stops at the backup (only the rows before it), and a scratch directory
  left by a killed run is cleaned up first;
- a table below its minimum, a table that does not exist: the check fails naming them;
- refusals before anything changes: an unknown backup label, a scratch directory that
  is not ours;
- a file of the backup damaged in the repository: the check fails naming the file, and
  nothing is restored; without the repository check the restore fails on that file.
The scratch directory is gone after every run.
"""

import os

import pytest

from backrest_harness import RepositoryHost
from pgharness import chown_pg

from ansible_collections.pgha.multidc.plugins.module_utils.lsn import parse_lsn

SERVER_PREFIX = 'pgv'
STANZA = 'main'
CIPHER = 'Verify-K7pY2v9Qw4Zx8Rt1Ls6Hn3Bc'
BEFORE_BACKUP, AFTER_BACKUP = 1000, 1500


@pytest.fixture(scope='module')
def site(servers, ca, primary, standby):
    repository = RepositoryHost(os.path.join(servers.base, 'pgbackrest'), ca, STANZA, cipher_pass=CIPHER,
                                repo_extra={'archive-timeout': 30}, db_extra={'archive-timeout': 30, 'io-timeout': 5})
    repository.add_database(primary)
    repository.add_database(standby, archive=False)
    try:
        yield repository.start()
    finally:
        repository.close()


@pytest.fixture(scope='module')
def on_repo(site):
    return {'stanza': STANZA, 'config': site.repo_conf, 'timeout': 300}


@pytest.fixture(scope='module')
def scratch(servers):
    """A scratch directory path whose parent postgres may write (the module creates it)."""
    parent = os.path.join(servers.base, 'verify')
    os.makedirs(parent)
    chown_pg(parent)
    return os.path.join(parent, 'scratch')


@pytest.fixture(scope='module')
def backup(ansible, site, primary, on_repo):
    """Rows 1-1000 of t and the table u before a full backup, rows 1001-1500 of t after it,
    archived (pgbackrest check switches the segment and waits for it)."""
    assert ansible.run('pgbackrest_stanza', on_repo)['created'] is True
    primary.execute('CREATE TABLE t (id int PRIMARY KEY, note text)')
    primary.execute("INSERT INTO t SELECT g, 'before' FROM generate_series(1, %d) g" % BEFORE_BACKUP)
    primary.execute('CREATE TABLE u AS SELECT g AS id FROM generate_series(1, 42) g')
    taken = ansible.run('pgbackrest_backup', dict(on_repo, type='full'))
    with open(os.path.join(site.paths['log'], '%s-backup.log' % STANZA)) as handle:
        assert 'replay on the standby reached' in handle.read()  # copied from the standby
    primary.execute("INSERT INTO t SELECT g, 'after' FROM generate_series(%d, %d) g" % (BEFORE_BACKUP + 1, AFTER_BACKUP))
    check = ansible.run('pgbackrest_info', {'stanza': STANZA, 'config': site.conf_of(primary), 'check': True,
                                            'timeout': 300})
    assert check['check']['passed'] is True, check['check']
    return taken


def repository_files(site):
    listing = []
    for root, dirs, files in os.walk(site.paths['repo']):
        for name in files:
            path = os.path.join(root, name)
            listing.append((os.path.relpath(path, site.paths['repo']), os.path.getsize(path)))
    return sorted(listing)


def test_check_mode_plans_and_creates_nothing(ansible, on_repo, backup, scratch):
    result = ansible.run('pgbackrest_verify', dict(on_repo, scratch_dir=scratch, tables='t=1500, u'),
                         check_mode=True)
    assert result['changed'] is False
    assert result['label'] == backup['label']
    assert any('restore backup %s' % backup['label'] in step for step in result['plan'])
    assert any('count the rows of t (at least 1500), u' in step for step in result['plan'])
    assert '--reset-pg1-host' in result['commands']['restore']
    assert '--archive-mode=off' in result['commands']['restore']
    assert not os.path.exists(scratch)


def test_a_good_backup_passes_replayed_to_the_end_of_the_archive(ansible, site, on_repo, backup, scratch):
    before = repository_files(site)
    result = ansible.run('pgbackrest_verify', dict(on_repo, scratch_dir=scratch, tables={'t': AFTER_BACKUP, 'public.u': None},
                                                   amcheck=True))
    assert result['changed'] is False
    assert result['label'] == backup['label'] and result['backup']['stop'] == backup['backup']['stop']
    assert result['verify']['status'] == 'ok' and result['verify']['damaged_files'] == []
    assert [b['status'] for b in result['verify']['backups']] == ['valid']
    # The end of the archive: the rows written after the backup are there.
    assert result['counts'] == {'t': AFTER_BACKUP, 'public.u': 42}
    assert result['tables'] == [{'name': 't', 'minimum': AFTER_BACKUP, 'count': AFTER_BACKUP},
                                {'name': 'public.u', 'minimum': None, 'count': 42}]
    assert result['amcheck']['ran'] is True and result['amcheck']['passed'] is True, result['amcheck']
    assert result['restore_seconds'] > 0 and result['recovery_seconds'] > 0
    assert parse_lsn(result['end_lsn']) > parse_lsn(backup['backup']['lsn_stop'])
    assert result['timeline'] == 2 and result['last_transaction_time'] is not None
    assert result['scratch_removed'] is True and not os.path.exists(scratch)
    # The promoted copy archived nothing: no 00000002.history, no WAL of its own.
    after = repository_files(site)
    assert [path for path, size in after if path.endswith('.history')] == []
    assert after == before


def test_immediate_stops_at_the_backup_and_a_killed_runs_leftover_is_cleaned(ansible, on_repo, backup, scratch):
    os.makedirs(os.path.join(scratch, 'data'))
    with open(os.path.join(scratch, '.pgha-verify'), 'w') as handle:
        handle.write('left by a run that was killed\n')
    with open(os.path.join(scratch, 'data', 'junk'), 'w') as handle:
        handle.write('x')
    chown_pg(scratch)
    result = ansible.run('pgbackrest_verify', dict(on_repo, scratch_dir=scratch, type='immediate', tables='t',
                                                   verify_repository=False))
    assert result['changed'] is True and result['leftover_removed'] is True
    assert result['verify'] is None
    assert result['counts'] == {'t': BEFORE_BACKUP}
    assert not os.path.exists(scratch)


def test_a_table_below_its_minimum_or_missing_fails_naming_it(ansible, on_repo, backup, scratch):
    result = ansible.run('pgbackrest_verify', dict(on_repo, scratch_dir=scratch, verify_repository=False,
                                                   tables='t=1501, u=42, nosuch'), expect_failure=True)
    assert 'table t has %d rows, fewer than the minimum 1501' % AFTER_BACKUP in result['msg']
    assert 'table nosuch does not exist in database postgres' in result['msg']
    assert 'table u' not in result['msg']
    assert result['counts'] == {'t': AFTER_BACKUP, 'u': 42, 'nosuch': None}
    assert result['scratch_removed'] is True and not os.path.exists(scratch)


def test_refusals_change_nothing(ansible, on_repo, backup, scratch):
    unknown = ansible.run('pgbackrest_verify', dict(on_repo, scratch_dir=scratch, set='20200101-000000F'),
                          expect_failure=True)
    assert 'backup 20200101-000000F is not in stanza main' in unknown['msg']
    assert not os.path.exists(scratch)
    bad_table = ansible.run('pgbackrest_verify', dict(on_repo, scratch_dir=scratch, tables='t=many'),
                            expect_failure=True)
    assert "table t: the minimum row count 'many' is not a whole number" in bad_table['msg']
    assert not os.path.exists(scratch)

    os.makedirs(scratch)
    with open(os.path.join(scratch, 'precious'), 'w') as handle:
        handle.write('not ours\n')
    chown_pg(scratch)
    foreign = ansible.run('pgbackrest_verify', dict(on_repo, scratch_dir=scratch), expect_failure=True)
    assert 'is not a scratch directory of pgbackrest_verify' in foreign['msg']
    assert os.listdir(scratch) == ['precious']
    os.unlink(os.path.join(scratch, 'precious'))
    os.rmdir(scratch)


def test_a_damaged_backup_file_fails_naming_the_file(ansible, site, primary, on_repo, backup, scratch):
    relation = primary.scalar("SELECT pg_relation_filepath('t')")
    relative = 'pg_data/%s.zst' % relation
    damaged = os.path.join(site.paths['repo'], 'backup', STANZA, backup['label'], relative)
    with open(damaged, 'rb') as handle:
        original = handle.read()
    with open(damaged, 'r+b') as handle:
        handle.seek(len(original) // 2)
        handle.write(b'\x00damaged by test_pgbackrest_verify\x00')
    try:
        result = ansible.run('pgbackrest_verify', dict(on_repo, scratch_dir=scratch, tables='t'),
                             expect_failure=True)
        # Without pgbackrest verify, the restore itself checks each file it copies.
        unverified = ansible.run('pgbackrest_verify', dict(on_repo, scratch_dir=scratch, tables='t',
                                                           verify_repository=False), expect_failure=True)
    finally:
        with open(damaged, 'wb') as handle:
            handle.write(original)
    name = 'backup/%s/%s/%s' % (STANZA, backup['label'], relative)
    assert 'failed verification: pgbackrest verify: 1 damaged file(s)' in result['msg'], result['msg']
    assert name in result['msg']
    assert '%s invalid' % backup['label'] in result['msg']
    assert [item['path'] for item in result['verify']['damaged_files']] == [name]
    assert result['restore_seconds'] is None  # nothing was restored
    assert result['scratch_removed'] is True and not os.path.exists(scratch)
    assert 'pgbackrest restore failed' in unverified['msg'], unverified['msg']
    assert "scratch/data/%s': actual checksum" % relation in unverified['msg'], unverified['msg']
    assert unverified['scratch_removed'] is True and not os.path.exists(scratch)
