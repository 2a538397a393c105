# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL log sequence numbers: parsing, formatting, ordering and distance.

An LSN is written ``X/Y`` with two hexadecimal halves of a 64-bit byte position.
Everything here is pure so it can be unit-tested and used on the control node.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

_LSN_RE = re.compile(r'^\s*([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})\s*$')


class InvalidLSN(ValueError):
    pass


def parse_lsn(text):
    """Return the byte position of ``text`` (``'16/B374D848'``); None stays None."""
    if text is None:
        return None
    if isinstance(text, int):
        if text < 0 or text >= 1 << 64:
            raise InvalidLSN('LSN out of range: %d' % text)
        return text
    match = _LSN_RE.match(str(text))
    if not match:
        raise InvalidLSN('not an LSN: %r (expected X/Y in hexadecimal)' % (text,))
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(position):
    """Return the ``X/Y`` text of a byte position; None stays None."""
    if position is None:
        return None
    if isinstance(position, str):
        position = parse_lsn(position)
    if position < 0 or position >= 1 << 64:
        raise InvalidLSN('LSN out of range: %r' % (position,))
    return '%X/%X' % (position >> 32, position & 0xFFFFFFFF)


def lsn_diff(newer, older):
    """Bytes from ``older`` to ``newer`` (negative when ``older`` is ahead).

    Returns None when either side is unknown, so callers cannot mistake
    "unknown" for "no lag".
    """
    newer, older = parse_lsn(newer), parse_lsn(older)
    if newer is None or older is None:
        return None
    return newer - older


def max_lsn(*values):
    """The most advanced of the known LSNs (as text), or None if none is known."""
    known = [parse_lsn(v) for v in values if v is not None]
    return format_lsn(max(known)) if known else None


def pretty_bytes(count):
    """Human-readable byte count for messages (``1.5 MiB``)."""
    if count is None:
        return 'unknown'
    sign = '-' if count < 0 else ''
    value = float(abs(count))
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if value < 1024 or unit == 'TiB':
            if unit == 'B':
                return '%s%d B' % (sign, int(value))
            return '%s%.1f %s' % (sign, value, unit)
        value /= 1024
