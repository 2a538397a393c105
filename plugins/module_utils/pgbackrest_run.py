# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running pgBackRest from the modules: the shared options and one way to call it.

The decisions (what to run, what the output means) are in ``pgbackrest.py``; this is
the process glue, exercised by tests/integration/test_pgbackrest.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import shutil

from ansible_collections.pgha.multidc.plugins.module_utils.basebackup import clean_environment, run_tool
from ansible_collections.pgha.multidc.plugins.module_utils.pgbackrest import (
    DEFAULT_CONFIG, PgbackrestError, describe_failure, parse_errors, parse_info, parse_repo_ls, validate_stanza)


def pgbackrest_argument_spec():
    """Options of every pgBackRest module (doc fragment ``pgha.multidc.pgbackrest``)."""
    return dict(
        stanza=dict(type='str', required=True),
        config=dict(type='path', default=DEFAULT_CONFIG),
        executable=dict(type='path', default='pgbackrest'),
        timeout=dict(type='int', default=3600),
    )


def check_common(params):
    """Refuse bad shared options before anything runs."""
    validate_stanza(params['stanza'])
    if params['timeout'] < 1:
        raise PgbackrestError('timeout must be at least 1 second')
    if not shutil.which(params['executable']):
        raise PgbackrestError('%s not found: install pgBackRest (the Debian package pgbackrest)'
                              % params['executable'])


def base_argv(params):
    return [params['executable'], '--config=%s' % params['config'], '--stanza=%s' % params['stanza']]


def run(argv, timeout):
    """(rc, output) of a pgBackRest command; the C locale, no PG* variables (libpq's and
    PGBACKREST_*, which would override the configuration file behind our back)."""
    rc, out, err = run_tool(argv, timeout=timeout, env=clean_environment(), cwd='/')
    return rc, out + err


def run_or_raise(params, command, argv=None):
    """Run ``pgbackrest <command>`` (or the given ``argv``); raise PgbackrestError with the
    first error and its hints when it fails. Returns the output."""
    argv = argv or base_argv(params) + [command]
    rc, output = run(argv, params['timeout'])
    if rc != 0:
        raise PgbackrestError(describe_failure(command, rc, output))
    return output


def read_info(params, now=None):
    """``parse_info`` of ``pgbackrest info --output=json`` for the stanza."""
    argv = base_argv(params) + ['--output=json', 'info']
    rc, out, err = run_tool(argv, timeout=params['timeout'], env=clean_environment(), cwd='/')
    if rc != 0:
        raise PgbackrestError(describe_failure('info', rc, out + err))
    return parse_info(out, params['stanza'], now or datetime.datetime.now(datetime.timezone.utc))


def read_archive_timelines(params, archive_id):
    """``parse_repo_ls`` of the archive id's directory in the repository: its timelines."""
    argv = base_argv(params) + ['--output=json', 'repo-ls', 'archive/%s/%s' % (params['stanza'], archive_id)]
    rc, out, err = run_tool(argv, timeout=params['timeout'], env=clean_environment(), cwd='/')
    if rc != 0:
        raise PgbackrestError(describe_failure('repo-ls', rc, out + err))
    return parse_repo_ls(out)


def run_check(params):
    """``pgbackrest check``: ``{'passed', 'errors', 'warnings', 'message'}``, never raising."""
    rc, output = run(base_argv(params) + ['check'], params['timeout'])
    parsed = parse_errors(output)
    return {'passed': rc == 0, 'errors': parsed['errors'], 'warnings': parsed['warnings'],
            'message': None if rc == 0 else describe_failure('check', rc, output)}
