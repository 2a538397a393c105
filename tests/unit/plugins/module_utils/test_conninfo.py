# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/conninfo.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.pgha.multidc.plugins.module_utils.conninfo import (
    REDACTED, ConninfoError, build_conninfo, parse_conninfo, quote_value, redact)

SECRET = "s3cr3t pa'ss\\word"

# Values that need every kind of care: spaces, quotes, backslashes, '=', non-ASCII,
# whitespace other than a space, leading/trailing spaces.
AWKWARD_VALUES = [
    'plain',
    'with space',
    "it's",
    "'",
    "''",
    '\\',
    '\\\\',
    "\\'",
    'back\\slash',
    'C:\\path with space\\file',
    'a=b',
    '=',
    ' leading',
    'trailing ',
    'tab\there',
    'new\nline',
    'carriage\rreturn',
    'form\ffeed',
    'vertical\vtab',
    'non-breaking\u00a0space',
    'ünïcödé',
    'pass#word',
    '"double"',
    '0',
]


@pytest.mark.parametrize('value', AWKWARD_VALUES)
def test_round_trip_awkward_value(value):
    params = {'host': 'db1', 'password': value, 'application_name': value}
    assert parse_conninfo(build_conninfo(params)) == params


def test_round_trip_full():
    params = {
        'host': '172.30.1.11', 'port': '5432', 'user': 'replicator', 'passfile': '/var/lib/postgresql/.pgpass',
        'dbname': 'replication', 'application_name': 'dc2_pg1', 'sslmode': 'verify-full',
        'sslrootcert': '/etc/pgha/ca.crt', 'sslcert': '/etc/pgha/client.crt', 'sslkey': '/etc/pgha/client.key',
        'connect_timeout': '5', 'keepalives': '1', 'target_session_attrs': 'read-write',
        'options': '-c statement_timeout=0',
    }
    assert parse_conninfo(build_conninfo(params)) == params


def test_build_order_is_stable():
    text = build_conninfo({'sslmode': 'require', 'zzz_custom': 'z', 'user': 'u', 'host': 'h', 'aaa_custom': 'a'})
    assert text == 'host=h user=u sslmode=require aaa_custom=a zzz_custom=z'
    # Same content, another insertion order: same text (idempotent primary_conninfo).
    assert build_conninfo({'aaa_custom': 'a', 'host': 'h', 'zzz_custom': 'z', 'sslmode': 'require', 'user': 'u'}) == text


def test_build_leaves_out_none_and_empty():
    assert build_conninfo({'host': 'h', 'password': None, 'passfile': '', 'port': 5432}) == 'host=h port=5432'
    assert build_conninfo({}) == ''
    assert build_conninfo({'host': None}) == ''


def test_build_keeps_zero():
    assert build_conninfo({'connect_timeout': 0}) == 'connect_timeout=0'


def test_build_bool_as_int():
    assert build_conninfo({'keepalives': True}) == 'keepalives=1'
    assert build_conninfo({'keepalives': False}) == 'keepalives=0'


def test_build_quotes():
    assert build_conninfo({'password': 'a b'}) == "password='a b'"
    assert build_conninfo({'password': "it's"}) == "password='it\\'s'"
    assert build_conninfo({'password': 'a\\b'}) == "password='a\\\\b'"


@pytest.mark.parametrize('value, quoted', [
    ('simple', 'simple'),
    ('', "''"),
    ('a b', "'a b'"),
    ("a'b", "'a\\'b'"),
    ('a\\b', "'a\\\\b'"),
    ('a\tb', "'a\tb'"),
    ('a\rb', "'a\rb'"),
    (5432, '5432'),
])
def test_quote_value(value, quoted):
    assert quote_value(value) == quoted


@pytest.mark.parametrize('text, expected', [
    ('host=h port=5432', {'host': 'h', 'port': '5432'}),
    ('  host=h   port=5432  ', {'host': 'h', 'port': '5432'}),
    ('host = h port= 5432 user =u', {'host': 'h', 'port': '5432', 'user': 'u'}),
    ("password=''", {'password': ''}),
    ("password='' host=h", {'password': '', 'host': 'h'}),
    ('host=', {'host': ''}),
    ("password='a b c'", {'password': 'a b c'}),
    ("password='it\\'s'", {'password': "it's"}),
    ("password='back\\\\slash'", {'password': 'back\\slash'}),
    ('password=un\\ quoted', {'password': 'un quoted'}),
    ('application_name=a=b', {'application_name': 'a=b'}),
    ('host=a host=b', {'host': 'b'}),
    ('host=h\tport=1\nuser=u\rdbname=d', {'host': 'h', 'port': '1', 'user': 'u', 'dbname': 'd'}),
    ('', {}),
    ('   ', {}),
])
def test_parse(text, expected):
    assert parse_conninfo(text) == expected


def test_parse_none():
    assert parse_conninfo(None) == {}


def test_parse_keeps_unicode_space_inside_unquoted_value():
    # libpq splits on ASCII whitespace only.
    assert parse_conninfo('application_name=a\u00a0b host=h') == {'application_name': 'a\u00a0b', 'host': 'h'}


@pytest.mark.parametrize('text', [
    'host',
    'host localhost',
    'host=h port',
    '=value',
    "password='unterminated",
    "password='unterminated\\'",
])
def test_parse_rejects_malformed(text):
    with pytest.raises(ConninfoError):
        parse_conninfo(text)


def test_parse_error_names_a_known_key():
    with pytest.raises(ConninfoError, match="'host'"):
        parse_conninfo('host localhost')


@pytest.mark.parametrize('uri', [
    'postgresql://replicator:secret@db1:5432/postgres',
    'postgres://db1',
    '  postgresql://db1/postgres?sslmode=require',
])
def test_uri_rejected(uri):
    with pytest.raises(ConninfoError, match='URI') as error:
        parse_conninfo(uri)
    assert 'secret' not in str(error.value)


def test_uri_rejected_by_redact_without_leaking():
    with pytest.raises(ConninfoError) as error:
        redact('postgresql://replicator:secret@db1/postgres')
    assert 'secret' not in str(error.value)


def test_redact_dict():
    params = {'host': 'h', 'user': 'u', 'password': SECRET}
    redacted = redact(params)
    assert redacted == {'host': 'h', 'user': 'u', 'password': REDACTED}
    assert params['password'] == SECRET, 'redact must not change its argument'


def test_redact_dict_without_password():
    assert redact({'host': 'h', 'passfile': '/p'}) == {'host': 'h', 'passfile': '/p'}


@pytest.mark.parametrize('empty', [None, ''])
def test_redact_dict_empty_password_stays_empty(empty):
    assert redact({'password': empty}) == {'password': empty}


@pytest.mark.parametrize('password', [value for value in AWKWARD_VALUES if value.strip()] + [SECRET, 'hunter2'])
def test_redact_string_never_leaks_password(password):
    text = build_conninfo({'host': 'db1', 'user': 'replicator', 'password': password, 'sslmode': 'verify-full'})
    redacted = redact(text)
    assert parse_conninfo(redacted) == {'host': 'db1', 'user': 'replicator', 'password': REDACTED,
                                        'sslmode': 'verify-full'}
    if len(password) >= 5:  # shorter ones ('=', "'", '0') occur in any conninfo
        assert password not in redacted
        assert quote_value(password) not in redacted


def test_redact_string_shape():
    assert redact("host=db1 password='a b' user=u") == 'host=db1 user=u password=%s' % REDACTED


def test_redact_string_without_password():
    assert redact('host=db1 port=5432') == 'host=db1 port=5432'


def test_redact_error_does_not_leak_password_fragment():
    # An unquoted password with a space is malformed; the error must not echo its pieces.
    with pytest.raises(ConninfoError) as error:
        redact('host=db1 password=correct horse')
    assert 'horse' not in str(error.value)
    assert 'correct' not in str(error.value)
