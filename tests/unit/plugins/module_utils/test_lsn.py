# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/lsn.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.pgha.multidc.plugins.module_utils.lsn import (
    InvalidLSN, format_lsn, lsn_diff, max_lsn, parse_lsn, pretty_bytes)

MAX_POSITION = (1 << 64) - 1


@pytest.mark.parametrize('text, position', [
    ('0/0', 0),
    ('0/1', 1),
    ('0/FFFFFFFF', 0xFFFFFFFF),
    ('1/0', 1 << 32),
    ('16/B374D848', (0x16 << 32) | 0xB374D848),
    ('FFFFFFFF/FFFFFFFF', MAX_POSITION),
    ('ffffffff/ffffffff', MAX_POSITION),
    ('0/3000060', 0x3000060),
    ('  0/3000060\n', 0x3000060),
    ('00000000/00000001', 1),
])
def test_parse(text, position):
    assert parse_lsn(text) == position


@pytest.mark.parametrize('text', [
    '0/0', '0/1', '0/FFFFFFFF', '1/0', '16/B374D848', 'FFFFFFFF/FFFFFFFF', 'A/B', '7F/1000000',
])
def test_round_trip_text(text):
    assert format_lsn(parse_lsn(text)) == text


@pytest.mark.parametrize('position', [0, 1, 0xFFFFFFFF, 1 << 32, (1 << 32) + 1, 123456789012345, MAX_POSITION])
def test_round_trip_position(position):
    assert parse_lsn(format_lsn(position)) == position


def test_format_is_uppercase_without_padding():
    assert format_lsn((0x16 << 32) | 0xb374d848) == '16/B374D848'
    assert format_lsn(0x3000060) == '0/3000060'


def test_format_accepts_text():
    assert format_lsn('16/b374d848') == '16/B374D848'


@pytest.mark.parametrize('bad', [
    '', ' ', '/', '0/', '/0', '0', '0-0', '0/0/0', 'G/0', '0/G', '-1/0', '0x1/0',
    '100000000/0', '0/100000000', '1 /0', 'X/Y', 'lsn', '0 / 0',
])
def test_parse_rejects_bad_text(bad):
    with pytest.raises(InvalidLSN):
        parse_lsn(bad)


def test_invalid_lsn_is_a_value_error():
    with pytest.raises(ValueError):
        parse_lsn('nope')


def test_parse_error_names_the_input():
    with pytest.raises(InvalidLSN, match='nope'):
        parse_lsn('nope')


def test_parse_int_passes_through():
    assert parse_lsn(42) == 42
    assert parse_lsn(0) == 0


def test_parse_negative_int_rejected():
    with pytest.raises(InvalidLSN):
        parse_lsn(-1)


@pytest.mark.parametrize('bad', [-1, 1 << 64])
def test_format_out_of_range(bad):
    with pytest.raises(InvalidLSN):
        format_lsn(bad)


def test_format_bad_text():
    with pytest.raises(InvalidLSN):
        format_lsn('not/an/lsn')


def test_none_stays_none():
    assert parse_lsn(None) is None
    assert format_lsn(None) is None


def test_ordering_is_numeric_not_textual():
    # As text '9/0' > '10/0' and '0/9' > '0/10'; as positions the opposite.
    assert parse_lsn('10/0') > parse_lsn('9/0')
    assert parse_lsn('0/10') > parse_lsn('0/9')
    assert parse_lsn('1/0') > parse_lsn('0/FFFFFFFF')
    values = ['1/0', '0/FFFFFFFF', '0/A', '10/0', '9/FFFFFFFF', '0/9']
    assert sorted(values, key=parse_lsn) == ['0/9', '0/A', '0/FFFFFFFF', '1/0', '9/FFFFFFFF', '10/0']


def test_diff():
    assert lsn_diff('0/3000100', '0/3000000') == 0x100
    assert lsn_diff('1/0', '0/FFFFFFFF') == 1
    assert lsn_diff('0/0', '0/0') == 0
    assert lsn_diff('FFFFFFFF/FFFFFFFF', '0/0') == MAX_POSITION


def test_diff_negative_when_older_is_ahead():
    assert lsn_diff('0/FFFFFFFF', '1/0') == -1


def test_diff_mixed_int_and_text():
    assert lsn_diff(1 << 32, '0/0') == 1 << 32


@pytest.mark.parametrize('newer, older', [(None, '0/0'), ('0/0', None), (None, None)])
def test_diff_unknown_is_none_not_zero(newer, older):
    assert lsn_diff(newer, older) is None


def test_diff_rejects_bad_text():
    with pytest.raises(InvalidLSN):
        lsn_diff('0/1', 'bogus')


def test_max_lsn():
    assert max_lsn('0/9', '0/A', '0/10') == '0/10'
    assert max_lsn('10/0', '9/FFFFFFFF') == '10/0'
    assert max_lsn('0/1') == '0/1'


def test_max_lsn_skips_unknown():
    assert max_lsn(None, '0/5', None) == '0/5'
    assert max_lsn(None, None) is None
    assert max_lsn() is None


def test_max_lsn_normalises_case():
    assert max_lsn('a/b') == 'A/B'


@pytest.mark.parametrize('count, text', [
    (None, 'unknown'),
    (0, '0 B'),
    (1, '1 B'),
    (1023, '1023 B'),
    (1024, '1.0 KiB'),
    (1536, '1.5 KiB'),
    (1024 * 1024, '1.0 MiB'),
    (3 * 1024 ** 3, '3.0 GiB'),
    (2 * 1024 ** 4, '2.0 TiB'),
    (5000 * 1024 ** 4, '5000.0 TiB'),
    (-2048, '-2.0 KiB'),
    (-5, '-5 B'),
])
def test_pretty_bytes(count, text):
    assert pretty_bytes(count) == text


def test_parse_int_beyond_64_bits_rejected():
    assert parse_lsn(MAX_POSITION) == MAX_POSITION
    with pytest.raises(InvalidLSN):
        parse_lsn(1 << 64)
