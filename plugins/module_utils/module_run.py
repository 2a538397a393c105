# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The connect, run, fail-or-close frame of the modules that work on the local server
(pg_promote, pg_replay_control, pg_replication_slot, pg_replication_info).

    with local_connection(module, result) as conn:
        ...  # work; a ReplicationError or a database error ends the module with fail_json
    module.exit_json(**result)
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from contextlib import contextmanager

from ansible_collections.pgha.multidc.plugins.module_utils.connection import (
    DatabaseError, connect_from_module)
from ansible_collections.pgha.multidc.plugins.module_utils.replication import ReplicationError


@contextmanager
def local_connection(module, result=None, error_prefix='PostgreSQL error'):
    """Open the local connection from the module's login_* options (failing cleanly when
    psycopg2 is missing or the server cannot be reached) and close it at the end.

    An error raised inside the block ends the module with ``fail_json`` and ``result``:
    a ReplicationError with its message, its details merged into ``result`` and its
    ``warnings`` shown as warnings; a database error as ``<error_prefix>: <message>``.
    ``changed`` is then true when statements that change something ran (recorded in
    ``result['queries']``) outside check mode. With ``result`` None, only ``msg`` is returned.
    """
    conn = connect_from_module(module)
    try:
        yield conn
    except ReplicationError as error:
        details = dict(error.details)
        for warning in details.pop('warnings', []):
            module.warn(warning)
        result = _failed(module, result, details)
        module.fail_json(msg=str(error), **result)
    except DatabaseError as error:
        result = _failed(module, result, {})
        module.fail_json(msg='%s: %s' % (error_prefix, str(error).strip()), **result)
    finally:
        conn.close()


def _failed(module, result, details):
    if result is None:
        return details
    result.update(details)
    result['changed'] = bool(result.get('queries')) and not module.check_mode
    return result
