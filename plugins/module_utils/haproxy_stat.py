# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HAProxy's own view of its backends, from its stats socket (``show stat``): what
status.yml shows for each HAProxy host (module haproxy_backend_info)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import socket

# The aggregate lines of a proxy, not servers.
_AGGREGATES = ('FRONTEND', 'BACKEND')


class HaproxyStatError(Exception):
    pass


def read_show_stat(path, timeout=5.0):
    """The CSV text that ``show stat`` answers on the stats socket at ``path``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        sock.sendall(b'show stat\n')
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except (OSError, socket.timeout) as error:
        raise HaproxyStatError('cannot read the HAProxy stats socket %s: %s' % (path, error))
    finally:
        sock.close()
    return b''.join(chunks).decode('utf-8', 'replace')


def parse_show_stat(text):
    """The rows of ``show stat`` as dicts (its header line starts with ``# ``)."""
    lines = [line for line in (text or '').splitlines() if line.strip()]
    if not lines or not lines[0].startswith('# '):
        raise HaproxyStatError('not the answer of "show stat": %r' % (text or '')[:80])
    reader = csv.DictReader([lines[0][2:]] + lines[1:])
    return [dict((key, value) for key, value in row.items() if key) for row in reader]


def _number(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def backends_view(rows, only=None):
    """{proxy: {'status': its BACKEND line's status, 'servers': [{'name', 'status',
    'check_status', 'backup', 'since_s'}]}} for the proxies in ``only`` (all if None)."""
    view = {}
    for row in rows:
        proxy, name = row.get('pxname'), row.get('svname')
        if not proxy or (only and proxy not in only) or name == 'FRONTEND':
            continue
        entry = view.setdefault(proxy, {'status': None, 'servers': []})
        if name == 'BACKEND':
            entry['status'] = row.get('status')
            continue
        entry['servers'].append({'name': name, 'status': row.get('status'), 'check_status': row.get('check_status'),
                                 'backup': row.get('bck') == '1', 'since_s': _number(row.get('lastchg'))})
    return view
