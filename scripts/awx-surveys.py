#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AWX survey specifications of the operations' job templates, generated from the
playbooks' own argument specs (playbooks/vars/arguments.yml, the one place their inputs
are declared), one extensions/awx/surveys/<playbook>.json per operation playbook.

    .venv/bin/python scripts/awx-surveys.py            write the surveys
    .venv/bin/python scripts/awx-surveys.py --check    exit 1 and name every difference
                                                       when the files differ from the specs

How an input becomes a question (AWX survey_spec, /api/v2/job_templates/N/survey_spec/):
  int             integer, min/max from the spec's minimum/maximum
  float           float
  str, path       text; multiplechoice when the spec lists choices
  bool            multiplechoice of "true" and "false": AWX has no boolean question; the
                  playbooks validate them as type bool (validate_argument_spec accepts
                  these strings) and read them with `| bool`
A default is given when the spec has one (AWX then passes it as an extra var); an input
without a default is left out unless answered. Other types (list, dict, raw) cannot be
asked and stop the generation."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import json
import os
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
ARGUMENTS = os.path.join('playbooks', 'vars', 'arguments.yml')
SURVEYS = os.path.join('extensions', 'awx', 'surveys')
SPECS_KEY = '__pgha_op_arguments'
BOOL_CHOICES = ['true', 'false']


class SpecError(Exception):
    """An input that no survey question can ask."""


def load_arguments(path):
    """({playbook: {input: option}}, the names of the shared inputs) from the arguments
    file: YAML merge keys resolved; the shared inputs are those of the option groups the
    playbooks merge (every other top-level mapping of the file)."""
    with open(path) as handle:
        data = yaml.safe_load(handle) or {}
    specs = data.get(SPECS_KEY)
    if not isinstance(specs, dict) or not specs:
        raise SpecError('%s declares no %s' % (path, SPECS_KEY))
    shared = set()
    for key, group in data.items():
        if key != SPECS_KEY and isinstance(group, dict):
            shared.update(group)
    return specs, shared


def bool_text(value):
    return 'true' if value else 'false'


def question(playbook, name, option):
    """The survey question of one input."""
    option = option or {}
    kind = option.get('type', 'str')
    description = str(option.get('description', '')).strip()
    if option.get('database_host'):
        description += ' A database host of the inventory (group pgha_database).'
    item = {
        'question_name': name,
        'question_description': description,
        'variable': name,
        'required': bool(option.get('required', False)),
    }
    has_default = 'default' in option and option['default'] is not None
    default = option.get('default')
    if kind == 'bool':
        item['type'] = 'multiplechoice'
        item['choices'] = list(BOOL_CHOICES)
        if has_default:
            item['default'] = bool_text(default)
    elif kind in ('int', 'float'):
        item['type'] = 'integer' if kind == 'int' else 'float'
        for key, survey_key in (('minimum', 'min'), ('maximum', 'max')):
            if option.get(key) is not None:
                # The AWX API takes whole numbers only for min and max.
                item[survey_key] = int(option[key])
        if has_default:
            item['default'] = int(default) if kind == 'int' else float(default)
    elif kind in ('str', 'path'):
        if option.get('choices'):
            item['type'] = 'multiplechoice'
            item['choices'] = [str(choice) for choice in option['choices']]
            if has_default and str(default) != '':
                item['default'] = str(default)
        else:
            item['type'] = 'text'
            if has_default:
                item['default'] = str(default)
    else:
        raise SpecError('%s: %s is of type %s, which no AWX survey question can ask' % (playbook, name, kind))
    return item


def survey(playbook, options, shared=()):
    """The survey_spec of one playbook: required inputs first, the playbook's own next,
    the shared ones (timeouts, the maintenance key) last, each in the declared order."""
    names = sorted(options, key=lambda name: (not (options[name] or {}).get('required', False), name in shared))
    return {
        'name': 'pgha.multidc %s' % playbook,
        'description': ('Inputs of playbooks/%s, generated from %s by scripts/awx-surveys.py: '
                        'regenerate, do not edit.' % (playbook, ARGUMENTS)),
        'spec': [question(playbook, name, options[name]) for name in names],
    }


def surveys(arguments_path):
    """{file name: survey} for every playbook of the arguments file."""
    specs, shared = load_arguments(arguments_path)
    return dict(('%s.json' % os.path.splitext(playbook)[0], survey(playbook, options or {}, shared))
                for playbook, options in specs.items())


def render(spec):
    return json.dumps(spec, indent=2) + '\n'


def differences(name, expected, actual):
    """What differs between two surveys, question by question."""
    found = []
    for key in ('name', 'description'):
        if expected.get(key) != actual.get(key):
            found.append('%s: %s is %r, the specs give %r' % (name, key, actual.get(key), expected.get(key)))
    want = dict((item['variable'], item) for item in expected['spec'])
    have = dict((item.get('variable'), item) for item in actual.get('spec') or [] if isinstance(item, dict))
    for variable in sorted(set(want) - set(have)):
        found.append('%s: no question for %s, which the specs declare' % (name, variable))
    for variable in sorted(set(have) - set(want)):
        found.append('%s: question %s asks for an input the specs do not declare' % (name, variable))
    for variable in sorted(set(want) & set(have)):
        for key in sorted(set(want[variable]) | set(have[variable])):
            if want[variable].get(key) != have[variable].get(key):
                found.append('%s: question %s: %s is %r, the specs give %r'
                             % (name, variable, key, have[variable].get(key), want[variable].get(key)))
    if not found and [item['variable'] for item in expected['spec']] != [item.get('variable') for item in actual.get('spec') or []]:
        found.append('%s: the questions are not in the generated order' % name)
    return found


def check(expected, directory):
    """Every difference between the generated surveys and the files of ``directory``."""
    problems = []
    present = sorted(entry for entry in os.listdir(directory) if entry.endswith('.json')) if os.path.isdir(directory) else []
    for name in sorted(set(present) - set(expected)):
        problems.append('%s: no playbook of %s has this survey (remove it)' % (name, ARGUMENTS))
    for name in sorted(expected):
        path = os.path.join(directory, name)
        if name not in present:
            problems.append('%s: missing' % name)
            continue
        with open(path) as handle:
            text = handle.read()
        if text == render(expected[name]):
            continue
        try:
            actual = json.loads(text)
        except ValueError as error:
            problems.append('%s: not JSON (%s)' % (name, error))
            continue
        problems.extend(differences(name, expected[name], actual) or ['%s: differs in layout only' % name])
    return problems


def write(expected, directory):
    if not os.path.isdir(directory):
        os.makedirs(directory)
    for name in sorted(entry for entry in os.listdir(directory) if entry.endswith('.json')):
        if name not in expected:
            os.remove(os.path.join(directory, name))
            print('removed %s' % os.path.join(directory, name))
    for name, spec in sorted(expected.items()):
        path = os.path.join(directory, name)
        text = render(spec)
        old = None
        if os.path.exists(path):
            with open(path) as handle:
                old = handle.read()
        if old != text:
            with open(path, 'w') as handle:
                handle.write(text)
            print('wrote %s' % path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--check', action='store_true',
                        help='change nothing; exit 1 naming every difference when the files differ from the specs')
    parser.add_argument('--arguments', default=os.path.join(ROOT, ARGUMENTS),
                        help='the argument specs (default: %(default)s)')
    parser.add_argument('--output', default=os.path.join(ROOT, SURVEYS),
                        help='the directory of the surveys (default: %(default)s)')
    args = parser.parse_args(argv)
    try:
        expected = surveys(args.arguments)
    except (SpecError, OSError, yaml.YAMLError) as error:
        print('awx-surveys: %s' % error, file=sys.stderr)
        return 2
    if not args.check:
        write(expected, args.output)
        return 0
    problems = check(expected, args.output)
    if problems:
        print('awx-surveys: the surveys in %s differ from %s:' % (args.output, args.arguments), file=sys.stderr)
        for problem in problems:
            print('  ' + problem, file=sys.stderr)
        print('regenerate them: .venv/bin/python scripts/awx-surveys.py', file=sys.stderr)
        return 1
    print('awx-surveys: %d survey(s) match %s' % (len(expected), args.arguments))
    return 0


if __name__ == '__main__':
    sys.exit(main())
