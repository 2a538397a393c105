# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgha_dcs_lock: the maintenance key in etcd, from the control node (documentation:
plugins/modules/pgha_dcs_lock.py; logic: plugins/module_utils/maintenance.py).

It runs in the controller's process because what it holds belongs to the ansible-playbook
run: the keepalive child watches that process and ends the lease when it is gone.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import signal
import socket
import subprocess
import sys

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.pgha.multidc.plugins.module_utils import dcs as dcs_utils
from ansible_collections.pgha.multidc.plugins.module_utils import maintenance

ARGUMENT_SPEC = {
    'state': {'type': 'str', 'required': True, 'choices': ['acquire', 'release', 'on', 'off', 'read']},
    'endpoints': {'type': 'list', 'elements': 'str', 'default': []},
    'cluster': {'type': 'str', 'required': True},
    'ca': {'type': 'path'},
    'cert': {'type': 'path'},
    'key': {'type': 'path', 'no_log': False},
    'operation': {'type': 'str'},
    'reason': {'type': 'str'},
    'ttl': {'type': 'int', 'default': 30},
    'force': {'type': 'bool', 'default': False},
    'required': {'type': 'bool', 'default': True},
    'timeout': {'type': 'float', 'default': 3.0},
    'idle_timeout': {'type': 'float', 'default': 60.0},
    'lease': {'type': 'int'},
    'keepalive_pid': {'type': 'int'},
}
REQUIRED_IF = [('state', 'acquire', ('operation',)), ('state', 'release', ('lease',))]
KEEPALIVE = ('from ansible_collections.pgha.multidc.plugins.module_utils.maintenance import keepalive_main; '
             'keepalive_main()')


def playbook_pid():
    """The ansible-playbook process this worker belongs to: the nearest ancestor whose
    command line names it (workers are forked from it), else the parent."""
    pid = os.getppid()
    candidate = pid
    for _level in range(8):
        try:
            with open('/proc/%d/cmdline' % candidate, 'rb') as handle:
                argv = handle.read().split(b'\0')
            with open('/proc/%d/stat' % candidate) as handle:
                parent = int(handle.read().rsplit(')', 1)[1].split()[1])
        except (IOError, OSError, ValueError, IndexError):
            break
        if any(os.path.basename(arg.decode('utf-8', 'replace')).startswith('ansible-playbook') for arg in argv[:2]):
            return candidate
        if parent <= 1:
            break
        candidate = parent
    return pid


def collections_root():
    """The directory that holds ansible_collections/ (for the keepalive child's imports)."""
    return os.path.abspath(os.path.join(os.path.dirname(dcs_utils.__file__), *(['..'] * 5)))


class ActionModule(ActionBase):

    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        validated = ArgumentSpecValidator(ARGUMENT_SPEC, required_if=REQUIRED_IF).validate(self._task.args)
        if validated.error_messages:
            result.update(failed=True, msg='pgha_dcs_lock: %s' % '; '.join(validated.error_messages))
            return result
        args = validated.validated_parameters
        result.update(changed=False, lock='none')
        if not args['endpoints']:
            if args['required']:
                result.update(failed=True, msg='no etcd endpoint given: the maintenance key cannot be %s'
                              % {'acquire': 'taken', 'on': 'set', 'read': 'read'}.get(args['state'], 'given back'))
            else:
                result['msg'] = 'no etcd in the inventory: nothing to lock'
            return result
        tls = {'ca': args['ca'], 'cert': args['cert'], 'key': args['key']}
        try:
            dcs = dcs_utils.Dcs(args['endpoints'], args['cluster'], tls=tls, timeout=args['timeout'])
            result.update(getattr(self, '_' + args['state'])(dcs, args, tls))
        except maintenance.LockError as error:
            result.update(failed=True, msg=str(error))
        except dcs_utils.DcsError as error:
            if args['required']:
                result.update(failed=True, msg='the maintenance key cannot be read or written: %s' % error)
            else:
                result.update(msg='etcd does not answer (%s): going on without the maintenance key' % error)
        return result

    @staticmethod
    def _owner():
        return {'controller': socket.gethostname(), 'pid': playbook_pid()}

    def _acquire(self, dcs, args, tls):
        owner = self._owner()
        taken = maintenance.acquire(dcs, args['operation'], owner, args['ttl'], reason=args['reason'],
                                    force=args['force'])
        if taken['lock'] != maintenance.OPERATION:
            taken['dc_leaders'] = dcs.read().dc_leaders()
            return dict(taken, msg='under the maintenance of a person: %s' % maintenance.describe(taken['value']))
        busy = maintenance.wait_keepers_idle(dcs, args['idle_timeout'])
        if busy:
            maintenance.release(dcs, taken['lease'])
            raise maintenance.LockError(
                'the keepers of %s are still acting after %d s; the maintenance key was given back, try again'
                % (', '.join('%s (%s)' % item for item in sorted(busy.items())), args['idle_timeout']))
        # Read under the key once the keepers are idle, so that they no longer change: the
        # operation places the standbys of the other datacenters under these leaders.
        taken['dc_leaders'] = dcs.read().dc_leaders()
        child = subprocess.Popen(
            [sys.executable, '-s', '-c', KEEPALIVE], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True, cwd='/',
            env={'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'PYTHONPATH': collections_root(),
                 'PYTHONDONTWRITEBYTECODE': '1'})
        child.stdin.write(json.dumps({'endpoints': args['endpoints'], 'cluster': args['cluster'], 'tls': tls,
                                      'timeout': args['timeout'], 'lease': taken['lease'], 'ttl': args['ttl'],
                                      'pid': owner['pid']}).encode('utf-8'))
        child.stdin.close()
        return dict(taken, changed=True, keepalive_pid=child.pid,
                    msg='maintenance taken for %s (lease %x, %d s, kept while process %d lives)'
                    % (args['operation'], taken['lease'], args['ttl'], owner['pid']))

    @staticmethod
    def _release(dcs, args, tls):
        alive = maintenance.release(dcs, args['lease'])
        if args.get('keepalive_pid'):
            try:
                os.kill(args['keepalive_pid'], signal.SIGTERM)
            except OSError:
                pass
        return {'changed': alive, 'lock': 'released',
                'msg': 'maintenance given back' if alive else 'the lease had ended already'}

    def _on(self, dcs, args, tls):
        previous, value = maintenance.person_on(dcs, self._owner(), reason=args['reason'], force=args['force'])
        busy = maintenance.wait_keepers_idle(dcs, args['idle_timeout'])
        return {'changed': previous != value, 'lock': maintenance.PERSON, 'previous': previous, 'value': value,
                'busy': busy, 'msg': maintenance.describe(value) + (
                    '; the keepers of %s are still acting' % ', '.join(sorted(busy)) if busy
                    else '; no keeper is acting')}

    @staticmethod
    def _read(dcs, args, tls):
        view = maintenance.keeper_view(dcs)
        return {'keeper': view, 'msg': 'the keepers\' keys were read', 'lock': 'person' if (view['maintenance'] or {}).get('kind') == maintenance.PERSON
                else 'operation' if view['maintenance'] else 'none'}

    @staticmethod
    def _off(dcs, args, tls):
        previous, blocked = maintenance.person_off(dcs, force=args['force'])
        return {'changed': previous is not None or blocked is not None, 'previous': previous, 'blocked': blocked,
                'msg': 'maintenance off%s' % (' (it was: %s)' % maintenance.describe(previous) if previous else
                                              ' (it was off)')
                + ('; the blocked failover may be tried again: %s' % blocked.get('reason')
                   if isinstance(blocked, dict) else '')}
