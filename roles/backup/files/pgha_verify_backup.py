# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgha-verify-backup: the scheduled proof that a pgBackRest backup restores.

The systemd timer of pgha.multidc.backup runs it on the repository host as postgres. It
takes the steps of playbooks/verify_backup.yml (module pgha.multidc.pgbackrest_verify) with
the same library, installed next to this file: ``pgbackrest verify``, a restore of the
latest backup into a scratch directory, a throwaway server that replays the archive to its
end and never archives, row counts against minimums, optionally pg_amcheck; the server
stopped and the directory removed in every case.

It prints the result as one JSON document (to the journal), writes it to --result-file
(0640, replaced atomically) and exits 0 when the backup passed, 1 when it failed or could
not be verified, 2 on bad arguments.
"""

from __future__ import absolute_import, division, print_function

import argparse
import datetime
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=wrong-import-position
from ansible_collections.pgha.multidc.plugins.module_utils.pgbackrest import (  # noqa: E402
    DEFAULT_CONFIG, PgbackrestError)
from ansible_collections.pgha.multidc.plugins.module_utils.pgbackrest_verify import (  # noqa: E402
    DEFAULT_SCRATCH_DIR, RESTORE_TYPES, plan_from_repository, run, verdict)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog='pgha-verify-backup', description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--stanza', required=True)
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--executable', default='pgbackrest')
    parser.add_argument('--timeout', type=int, default=3600, help='seconds each pgBackRest command may take')
    parser.add_argument('--set', help='the label of the backup (default: the latest)')
    parser.add_argument('--type', choices=RESTORE_TYPES, default='default',
                        help='default: replay the archive to its end; immediate: stop at the backup')
    parser.add_argument('--tables', default='', help='public.orders=1000, customers: rows counted, with minimums')
    parser.add_argument('--database', default='postgres')
    parser.add_argument('--amcheck', action='store_true')
    parser.add_argument('--scratch-dir', default=DEFAULT_SCRATCH_DIR)
    parser.add_argument('--recovery-timeout', type=int, default=3600)
    parser.add_argument('--process-max', type=int)
    parser.add_argument('--pg-bindir')
    parser.add_argument('--result-file', help='where the last result is kept (JSON)')
    args = parser.parse_args(argv)
    return args, {
        'stanza': args.stanza, 'config': args.config, 'executable': args.executable, 'timeout': args.timeout,
        'set': args.set, 'type': args.type, 'tables': args.tables or None, 'database': args.database,
        'user': 'postgres', 'amcheck': args.amcheck, 'verify_repository': True, 'scratch_dir': args.scratch_dir,
        'port': None, 'process_max': args.process_max, 'recovery_timeout': args.recovery_timeout,
        'pg_bindir': args.pg_bindir,
    }


def verify(params):
    """(passed, result) of one verification; never raises for a failed one."""
    result = {'stanza': params['stanza'], 'scratch_dir': params['scratch_dir'], 'scratch_removed': False}
    try:
        plan = plan_from_repository(params)
    except PgbackrestError as error:
        result['msg'] = str(error)
        return False, result
    result.update(label=plan['backup']['label'], backup=plan['backup'], type=params['type'])
    try:
        outcome, problems = run(params, plan)
    except OSError as error:
        result['msg'] = 'the verification of %s could not clean up: %s' % (plan['backup']['label'], error)
        return False, result
    result.update(outcome, msg=verdict(params, plan, problems))
    return not problems, result


def write_result(path, document):
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix='.pgha-verify-result.')
    try:
        with os.fdopen(handle, 'w') as stream:
            json.dump(document, stream, indent=2, sort_keys=True, default=str)
        os.chmod(temporary, 0o640)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def main(argv=None):
    args, params = parse_args(sys.argv[1:] if argv is None else argv)
    passed, result = verify(params)
    result.update(passed=passed, finished=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'))
    print(json.dumps(result, sort_keys=True, default=str))
    if args.result_file:
        write_result(args.result_file, result)
    return 0 if passed else 1


if __name__ == '__main__':
    sys.exit(main())
