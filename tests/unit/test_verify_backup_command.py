"""roles/backup/files/pgha_verify_backup.py, the command of the scheduled verification: its
arguments become the module's parameters, a verification that cannot start fails with the
reason, and the result file is private to postgres' group. The verification itself runs on
real servers in tests/integration/test_pgbackrest_verify.py (the module) and on the lab
(molecule/default/tests/test_backup_schedule.py, this command through its systemd unit)."""

import importlib.util
import json
import os
import stat

import pytest

COMMAND = os.path.join(os.path.dirname(__file__), '..', '..', 'roles', 'backup', 'files', 'pgha_verify_backup.py')


@pytest.fixture(scope='module')
def command():
    spec = importlib.util.spec_from_file_location('pgha_verify_backup', COMMAND)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_arguments_are_the_modules_parameters(command):
    _args, params = command.parse_args(['--stanza=main', '--tables=public.orders=1000, customers', '--amcheck',
                                        '--type=immediate', '--recovery-timeout=60'])
    assert params['stanza'] == 'main' and params['tables'] == 'public.orders=1000, customers'
    assert params['amcheck'] is True and params['type'] == 'immediate' and params['recovery_timeout'] == 60
    assert params['verify_repository'] is True and params['set'] is None and params['port'] is None
    _args, params = command.parse_args(['--stanza=main'])
    assert params['tables'] is None and params['amcheck'] is False and params['type'] == 'default'


def test_bad_arguments_exit_2(command):
    with pytest.raises(SystemExit) as exited:
        command.parse_args(['--stanza=main', '--type=sideways'])
    assert exited.value.code == 2


def test_a_verification_that_cannot_start_fails_with_the_reason(command, tmp_path, capsys):
    result_file = str(tmp_path / 'last.json')
    rc = command.main(['--stanza=no/such stanza', '--result-file', result_file])
    assert rc == 1
    printed = json.loads(capsys.readouterr().out)
    assert printed['passed'] is False and 'stanza' in printed['msg'] and printed['finished'].endswith('Z')
    with open(result_file) as handle:
        assert json.load(handle) == printed
    assert stat.S_IMODE(os.stat(result_file).st_mode) == 0o640
    assert os.listdir(str(tmp_path)) == ['last.json']
