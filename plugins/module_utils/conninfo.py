# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libpq connection strings (``key=value`` form): build, parse and redact.

Used for primary_conninfo and for pg_basebackup's ``-d``. Passwords belong in a
passfile; ``redact`` exists so that a conninfo read back from a server never
carries one into a result or a log.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Order in which keys are written, so rendered conninfo is stable (idempotence).
_KEY_ORDER = ('host', 'hostaddr', 'port', 'user', 'password', 'passfile', 'dbname',
              'application_name', 'sslmode', 'sslrootcert', 'sslcert', 'sslkey',
              'sslcrl', 'sslsni', 'connect_timeout', 'keepalives', 'keepalives_idle',
              'keepalives_interval', 'keepalives_count', 'tcp_user_timeout', 'target_session_attrs',
              'channel_binding', 'gssencmode')

SECRET_KEYS = frozenset(['password'])
REDACTED = '********'

# What libpq's isspace() (C locale) separates on; Python's str.isspace() also matches
# Unicode spaces, which libpq keeps inside an unquoted value.
_SPACE = ' \t\n\r\f\v'


class ConninfoError(ValueError):
    pass


def quote_value(value):
    """Quote a conninfo value when libpq needs it (empty, spaces, quotes, backslashes)."""
    text = str(value)
    if text and not any(c.isspace() or c in "'\\" for c in text):
        return text
    return "'" + text.replace('\\', '\\\\').replace("'", "\\'") + "'"


def build_conninfo(params):
    """Render a dict as a conninfo string; None and '' values are left out."""
    keys = [k for k in _KEY_ORDER if k in params] + sorted(k for k in params if k not in _KEY_ORDER)
    parts = []
    for key in keys:
        value = params[key]
        if value is None or value == '':
            continue
        if isinstance(value, bool):
            value = int(value)
        parts.append('%s=%s' % (key, quote_value(value)))
    return ' '.join(parts)


def parse_conninfo(text):
    """Parse a ``key=value`` conninfo string into a dict (URIs are not accepted)."""
    if text is None:
        return {}
    text = text.strip(_SPACE)
    if text.startswith(('postgres://', 'postgresql://')):
        raise ConninfoError('URI connection strings are not supported here; use key=value form')
    result = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in _SPACE:
            i += 1
        if i >= n:
            break
        start = i
        while i < n and text[i] != '=' and text[i] not in _SPACE:
            i += 1
        key = text[start:i]
        while i < n and text[i] in _SPACE:
            i += 1
        if i >= n or text[i] != '=' or not key:
            # The "key" may be a piece of a badly quoted password: name it only when
            # it is a keyword we know, otherwise give its offset.
            where = repr(key) if key in _KEY_ORDER else 'the word at offset %d' % start
            raise ConninfoError('missing "=" after %s in conninfo' % where)
        i += 1
        while i < n and text[i] in _SPACE:
            i += 1
        value_chars = []
        if i < n and text[i] == "'":
            i += 1
            while True:
                if i >= n:
                    raise ConninfoError('unterminated quoted value for %r' % key)
                ch = text[i]
                if ch == '\\' and i + 1 < n:
                    value_chars.append(text[i + 1])
                    i += 2
                    continue
                if ch == "'":
                    i += 1
                    break
                value_chars.append(ch)
                i += 1
        else:
            while i < n and text[i] not in _SPACE:
                if text[i] == '\\' and i + 1 < n:
                    value_chars.append(text[i + 1])
                    i += 2
                    continue
                value_chars.append(text[i])
                i += 1
        result[key] = ''.join(value_chars)
    return result


def redact(params):
    """Copy of a conninfo dict (or string, returned as string) with secrets masked."""
    if isinstance(params, str):
        return build_conninfo(redact(parse_conninfo(params)))
    return dict((k, REDACTED if k in SECRET_KEYS and v else v) for k, v in params.items())
