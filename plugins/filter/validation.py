# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the up-front validation (roles/cluster_facts tasks/validate.yml and
playbooks/tasks/check_arguments.yml): what argument_specs cannot say (ranges), a spec fit
for ansible.builtin.validate_argument_spec, and the closest known name of a misspelt one."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.six import string_types

# Keys of our specs that validate_argument_spec does not know: the range of a number, and
# that a value names a database host (playbooks/vars/arguments.yml).
RANGE_KEYS = ('minimum', 'maximum')
OWN_KEYS = RANGE_KEYS + ('database_host', 'unit')
WHOLE_NUMBER = re.compile(r'^-?[0-9]+$')


def input_spec(options, optional=None):
    """An argument spec from the options of one entry point, or of several (a list: an
    option several declare is required when one requires it), without our own keys
    (OWN_KEYS), and with ``required`` dropped for the names in ``optional`` (a default
    elsewhere provides them, or a required argument is not asked for at this point)."""
    specs = options if isinstance(options, list) else [options]
    if not all(isinstance(one, dict) for one in specs):
        raise AnsibleFilterError('input_spec expects the options of an argument spec (a dict), or a list of them')
    optional = set(optional or [])
    spec = {}
    for one in specs:
        for name, option in one.items():
            option = dict((key, value) for key, value in (option or {}).items() if key not in OWN_KEYS)
            required = option.get('required', False) or spec.get(name, {}).get('required', False)
            spec[name] = dict(spec.get(name, {}), **option)
            if required and name not in optional:
                spec[name]['required'] = True
            else:
                spec[name].pop('required', None)
    return spec


def range_problems(values, ranges, subject, rule='ranges'):
    """One message per value of ``values`` that ``ranges`` ({name: {minimum, maximum}})
    bounds and that is not a whole number within the bounds."""
    if not isinstance(values, dict) or not isinstance(ranges, dict):
        raise AnsibleFilterError('range_problems expects a dict of values and a dict of ranges')
    problems = []
    for name in sorted(ranges):
        bounds = ranges[name] or {}
        if name not in values or not any(key in bounds for key in RANGE_KEYS):
            continue
        value = values[name]
        low, high = bounds.get('minimum'), bounds.get('maximum')
        wanted = ('a whole number from %s to %s' % (low, high) if low is not None and high is not None
                  else 'a whole number of at least %s' % low if low is not None
                  else 'a whole number of at most %s' % high)
        unit = (' (%s)' % bounds['unit']) if bounds.get('unit') else ''
        if isinstance(value, bool) or not WHOLE_NUMBER.match(str(value).strip()):
            problems.append('[%s] %s: %s = %r is not a whole number; it must be %s%s'
                            % (rule, subject, name, value, wanted, unit))
            continue
        number = int(str(value).strip())
        if (low is not None and number < int(low)) or (high is not None and number > int(high)):
            problems.append('[%s] %s: %s = %d is out of range; it must be %s%s'
                            % (rule, subject, name, number, wanted, unit))
    return problems


def unknown_names(names, known, prefix='pgha_'):
    """[[name, closest known name or '']] for each name of ``names`` with the prefix that
    ``known`` does not hold, sorted by name."""
    if isinstance(names, string_types) or isinstance(known, string_types):
        raise AnsibleFilterError('unknown_names expects lists of names')
    known = sorted(set(known or []))
    unknown = []
    for name in sorted(set(names or [])):
        if not str(name).startswith(prefix) or name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        unknown.append([name, close[0] if close else ''])
    return unknown


class FilterModule(object):
    def filters(self):
        return {
            'input_spec': input_spec,
            'range_problems': range_problems,
            'unknown_names': unknown_names,
        }
