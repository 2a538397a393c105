# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that bring plugins/module_utils/pgbackrest.py into the backup role's templates:
the configuration files and the PostgreSQL commands are rendered by the same unit-tested
functions the integration tests run pgBackRest with."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.pgha.multidc.plugins.module_utils import pgbackrest


def _call(name, function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except KeyError as error:
        raise AnsibleFilterError('%s: the setting %s is missing' % (name, error))
    except (pgbackrest.PgbackrestError, TypeError) as error:
        raise AnsibleFilterError('%s: %s' % (name, error))


def pgbackrest_database_conf(settings):
    """database_host_conf(**settings), without its own header (the template has one)."""
    return _call('pgbackrest_database_conf', pgbackrest.database_host_conf, header=None, **dict(settings))


def pgbackrest_repository_conf(settings):
    """repository_host_conf(**settings), without its own header (the template has one)."""
    return _call('pgbackrest_repository_conf', pgbackrest.repository_host_conf, header=None, **dict(settings))


def pgbackrest_databases(hosts, hostvars, path, port=5432, tls_port=pgbackrest.DEFAULT_TLS_PORT):
    """The ``databases`` of repository_host_conf() for inventory ``hosts``: each reached at
    its ansible_host (else its name) and known by its name (its certificate's CN)."""
    return [{'host': (hostvars.get(host) or {}).get('ansible_host', host), 'path': path, 'port': int(port),
             'tls_port': int(tls_port), 'client_cn': host} for host in hosts]


def pgbackrest_archive_command(stanza, config=pgbackrest.DEFAULT_CONFIG):
    return _call('pgbackrest_archive_command', pgbackrest.archive_command, stanza, config)


def pgbackrest_restore_command(stanza, config=pgbackrest.DEFAULT_CONFIG):
    return _call('pgbackrest_restore_command', pgbackrest.restore_command, stanza, config)


def pgbackrest_process_max(cpus):
    return pgbackrest.default_process_max(cpus)


def pgbackrest_status(archiver, host, repository=None, info=None, timeline=None, verification=None):
    """archive_status(): the WAL archive of the primary ``host`` (on ``timeline``), the backups of
    ``repository`` and the last scheduled ``verification`` of one."""
    return _call('pgbackrest_status', pgbackrest.archive_status, host, archiver, repository, info, timeline,
                 verification)


def pgbackrest_timelines_beyond(names, timeline):
    """timelines_beyond(): the WAL file names of timelines newer than ``timeline``."""
    return _call('pgbackrest_timelines_beyond', pgbackrest.timelines_beyond, names, timeline)


class FilterModule(object):

    def filters(self):
        return {
            'pgbackrest_database_conf': pgbackrest_database_conf,
            'pgbackrest_repository_conf': pgbackrest_repository_conf,
            'pgbackrest_databases': pgbackrest_databases,
            'pgbackrest_archive_command': pgbackrest_archive_command,
            'pgbackrest_restore_command': pgbackrest_restore_command,
            'pgbackrest_process_max': pgbackrest_process_max,
            'pgbackrest_status': pgbackrest_status,
            'pgbackrest_timelines_beyond': pgbackrest_timelines_beyond,
        }
