# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fencing a former primary in one module call (``pgha.multidc.pg_fence``).

The steps, in this order (``fence_now``, shared by the module and the keeper): the health agent's fence file, the PostgreSQL unit masked
(persistently) then stopped, a postmaster that survived the stop shut down with
``pg_ctl stop -m immediate`` as the owner of the data directory, then the data directory
read (``datadir.py``). ``plan_steps`` decides from what is there before anything changes
(also what check mode reports); the parsers and builders are pure and unit-tested, the
rest touches the host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import pwd
import stat
import subprocess
import tempfile

from ansible_collections.pgha.multidc.plugins.module_utils.basebackup import (
    BasebackupError, find_bindir, read_pg_version, run_tool, server_running)

# systemd unit properties read before the fence.
UNIT_PROPERTIES = ('LoadState', 'ActiveState', 'SubState', 'UnitFileState')
# ActiveState values for which `systemctl stop` has something to stop (or a pending
# automatic restart to cancel: "activating (auto-restart)").
ACTIVE_STATES = ('active', 'activating', 'deactivating', 'reloading', 'refreshing')
FENCE_FILE_MODE = 0o644
FENCE_DIR_MODE = 0o755
# The owner's programs find nothing else on PATH: pg_ctl is called by its full path.
OWNER_PATH = '/usr/local/bin:/usr/bin:/bin'


class FenceError(Exception):
    pass


def validate_unit_name(name):
    """``name`` when it can be a systemd unit name passed to systemctl as one argument."""
    if not name or name.startswith('-') or '/' in name or any(c.isspace() for c in name):
        raise FenceError('service: %r is not a systemd unit name' % (name,))
    return name


def parse_unit_show(text):
    """``systemctl show --property=...`` output (``Key=value`` lines) as a dict."""
    props = {}
    for line in (text or '').splitlines():
        key, sep, value = line.partition('=')
        if sep and key.strip():
            props[key.strip()] = value.strip()
    return props


def unit_masked(props):
    """Whether the unit is masked persistently. A runtime mask (``masked-runtime``, under
    /run) is gone after a reboot, so it does not count."""
    return props.get('UnitFileState') == 'masked'


def unit_active(props):
    return props.get('ActiveState') in ACTIVE_STATES


def fence_file_state(path, text):
    """What is at ``path`` compared with the fence file to write: ``exists`` (anything
    there), ``current`` (its text, None when unreadable or not a regular file) and
    ``ok`` (a regular file root:root 0644 with exactly ``text``)."""
    try:
        st = os.lstat(path)
    except OSError:
        return {'exists': False, 'current': None, 'ok': False}
    if not stat.S_ISREG(st.st_mode):
        return {'exists': True, 'current': None, 'ok': False}
    try:
        with open(path, 'rb') as handle:
            current = handle.read().decode('utf-8', 'replace')
    except (IOError, OSError):
        return {'exists': True, 'current': None, 'ok': False}
    attrs_ok = st.st_uid == 0 and st.st_gid == 0 and stat.S_IMODE(st.st_mode) == FENCE_FILE_MODE
    return {'exists': True, 'current': current, 'ok': attrs_ok and current == text}


def plan_steps(file_ok, unit_props, postmaster_running, mask=True):
    """What the fence has to do, decided before anything changes (``mask`` false: stop
    the unit without masking it).

    ``shutdown_survivor`` is a prediction (check mode): a postmaster that runs while the
    unit is not active was not started by systemd and will survive the stop; after a
    real stop the module looks again.
    """
    stop = unit_active(unit_props)
    return {
        'write_fence_file': not file_ok,
        'mask': bool(mask) and not unit_masked(unit_props),
        'stop': stop,
        'shutdown_survivor': bool(postmaster_running) and not stop,
    }


def missing_directories(path):
    """The directories to create, top down, so that ``path``'s directory exists."""
    missing = []
    directory = os.path.dirname(os.path.abspath(path))
    while directory and not os.path.lexists(directory):
        missing.insert(0, directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return missing


def write_fence_file(path, text):
    """Write ``text`` to ``path`` as root:root 0644, atomically (a reader sees the old file
    or the new one); directories that do not exist are created root:root 0755."""
    try:
        for directory in missing_directories(path):
            os.mkdir(directory, FENCE_DIR_MODE)
            os.chown(directory, 0, 0)
            os.chmod(directory, FENCE_DIR_MODE)  # whatever the umask
        handle, tmp = tempfile.mkstemp(prefix='.pgha-fence.', dir=os.path.dirname(os.path.abspath(path)))
    except OSError as error:
        raise FenceError('cannot write the fence file %s: %s' % (path, error))
    try:
        try:
            os.write(handle, text.encode('utf-8'))
            os.fchown(handle, 0, 0)
            os.fchmod(handle, FENCE_FILE_MODE)
            os.fsync(handle)
        finally:
            os.close(handle)
        os.rename(tmp, path)
    except OSError as error:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise FenceError('cannot write the fence file %s: %s' % (path, error))


def data_directory_owner(data_directory):
    """uid, gid (the owner's primary group), name and home of the owner of ``data_directory``."""
    try:
        st = os.stat(data_directory)
    except OSError as error:
        raise FenceError('cannot read the owner of %s: %s' % (data_directory, error))
    try:
        entry = pwd.getpwuid(st.st_uid)
        return {'uid': st.st_uid, 'gid': entry.pw_gid, 'name': entry.pw_name, 'home': entry.pw_dir or '/'}
    except KeyError:
        return {'uid': st.st_uid, 'gid': st.st_gid, 'name': None, 'home': '/'}


def owner_environment(owner):
    """The whole environment of a program run as ``owner``: nothing inherited from root's
    (no PG* variable, no root HOME), the C locale so that messages can be parsed."""
    env = {'HOME': owner.get('home') or '/', 'PATH': OWNER_PATH, 'LC_ALL': 'C', 'LANG': 'C'}
    if owner.get('name'):
        env['USER'] = env['LOGNAME'] = owner['name']
    return env


def pg_ctl_stop_argv(bindir, data_directory, timeout):
    return [os.path.join(bindir, 'pg_ctl'), 'stop', '-D', data_directory, '-m', 'immediate',
            '-w', '-t', str(int(timeout))]


def run_as_owner(argv, owner, timeout):
    """Run ``argv`` as ``owner`` (see data_directory_owner): the child drops root's groups,
    gid and uid before it executes, with the owner's environment only. Returns
    (rc, stdout, stderr); rc -1 when it took longer than ``timeout`` seconds."""
    if owner['uid'] == 0:
        raise FenceError('%s belongs to root: PostgreSQL programs do not run as root' % argv[0])

    def drop_privileges():
        if owner.get('name'):
            os.initgroups(owner['name'], owner['gid'])
        else:
            os.setgroups([owner['gid']])
        os.setgid(owner['gid'])
        os.setuid(owner['uid'])

    try:
        return run_tool(argv, timeout=timeout, env=owner_environment(owner), preexec_fn=drop_privileges, cwd='/')
    except (OSError, subprocess.SubprocessError) as error:
        raise FenceError('cannot run %s as %s: %s' % (argv[0], owner.get('name') or owner['uid'], error))


def controldata_summary(controldata):
    """datadir.parse_controldata's summary without the raw labels."""
    return dict((key, value) for key, value in (controldata or {}).items() if key != 'raw')


def command_error(argv, rc, out, err):
    """One line on a failed command: what ran, its exit code and its last words."""
    words = ' '.join(((err or '') + ' ' + (out or '')).split())
    if len(words) > 400:
        words = '...' + words[-400:]
    return '%s failed (exit code %s)%s' % (' '.join(argv), rc, ': ' + words if words else '')


def find_programs(data_directory, pg_bindir, program):
    """The bin directory with ``program`` for the data directory's major version."""
    version = read_pg_version(data_directory)
    if version is None and not pg_bindir:
        raise FenceError('%s is not a PostgreSQL data directory (no PG_VERSION)' % data_directory)
    try:
        return find_bindir(version, pg_bindir, program=program)
    except BasebackupError as error:
        raise FenceError(str(error))


def shut_down_survivor(data_directory, pg_bindir, pid, timeout):
    """pg_ctl stop -m immediate as the owner of the data directory; an error when a
    postmaster still runs afterwards."""
    bindir = find_programs(data_directory, pg_bindir, 'pg_ctl')
    argv = pg_ctl_stop_argv(bindir, data_directory, timeout)
    rc, out, err = run_as_owner(argv, data_directory_owner(data_directory), timeout + 10)
    still = server_running(data_directory)
    if still:
        raise FenceError('a postmaster (pid %d) survived the stop and still runs on %s after %s'
                         % (still, data_directory, command_error(argv, rc, out, err)))


def systemctl(argv, timeout, errors, what):
    rc, out, err = run_tool(argv, timeout=timeout)
    if rc != 0:
        errors.append('cannot %s: %s' % (what, command_error(argv, rc, out, err)))
    return rc, out


def fence_now(data_directory, service, fence_file, text, pg_bindir=None, mask=True,
              stop_timeout=30, systemctl_bin='systemctl', check_mode=False):
    """Fence the server on ``data_directory``: the fence file, the unit masked (``mask``)
    and stopped, a surviving postmaster shut down immediately. A failing step does not
    keep the next ones from running. Raises FenceError only when the unit cannot be read
    (nothing changed then). Returns what was there (``before``), what was (or, in check
    mode, would be) done, the postmaster still running (``pid``), ``errors`` (the fence is
    incomplete) and ``warnings``."""
    service = validate_unit_name(service)
    errors, warnings = [], []
    rc, out = systemctl([systemctl_bin, 'show', '--property=' + ','.join(UNIT_PROPERTIES), service],
                        30, errors, 'read the unit %s' % service)
    if rc != 0:
        raise FenceError(errors[0])
    unit = parse_unit_show(out)
    file_state = fence_file_state(fence_file, text)
    pid = server_running(data_directory)  # no pg_ctl status here: pg_ctl refuses root
    steps = plan_steps(file_state['ok'], unit, pid, mask=mask)
    outcome = {
        'before': {'fence_file': file_state['current'] if file_state['exists'] else None,
                   'masked': unit_masked(unit), 'active': unit_active(unit), 'postmaster_pid': pid},
        'was_running': bool(pid), 'fence_file_changed': steps['write_fence_file'],
        'masked_changed': steps['mask'], 'stopped': steps['stop'],
        'killed_survivor': steps['shutdown_survivor'], 'pid': pid,
        'errors': errors, 'warnings': warnings,
    }
    if check_mode:
        return outcome
    if steps['write_fence_file']:
        try:
            write_fence_file(fence_file, text)
        except FenceError as error:
            errors.append(str(error))
            outcome['fence_file_changed'] = False
    if steps['mask'] and systemctl([systemctl_bin, 'mask', service], 30, errors, 'mask %s' % service)[0] != 0:
        outcome['masked_changed'] = False
    if steps['stop']:
        # A failed stop is only a warning: what counts is whether a postmaster survived.
        systemctl([systemctl_bin, 'stop', service], stop_timeout, warnings, 'stop %s' % service)
    pid = server_running(data_directory)
    outcome['killed_survivor'] = bool(pid)
    if pid:
        try:
            shut_down_survivor(data_directory, pg_bindir, pid, stop_timeout)
            pid = None
        except FenceError as error:
            errors.append(str(error))
    outcome['pid'] = pid
    return outcome
