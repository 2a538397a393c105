# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AWX surveys of the operations (extensions/awx/surveys/*.json) never drift from the
playbooks' argument specs (playbooks/vars/arguments.yml): scripts/awx-surveys.py --check
passes on the checkout and names every difference on a drifted copy; the surveys follow
the rules the AWX API applies to a survey_spec; and every answer a survey admits passes the
playbooks' own validation (validate_argument_spec on input_spec, range_problems), while
an integer just outside a question's bounds is refused by both."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.pgha.multidc.plugins.filter.validation import input_spec, range_problems

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
SCRIPT = os.path.join(ROOT, 'scripts', 'awx-surveys.py')
SURVEYS = os.path.join(ROOT, 'extensions', 'awx', 'surveys')
ARGUMENTS = os.path.join(ROOT, 'playbooks', 'vars', 'arguments.yml')
# The question types and the Python type of their defaults, as the AWX API checks them
# (JobTemplateSurveySpec.ALLOWED_TYPES).
AWX_TYPES = {'text': str, 'textarea': str, 'password': str, 'integer': int, 'float': (float, int),
             'multiplechoice': str, 'multiselect': str}
# A value for a required text question (the database host check is the inventory's).
HOST = 'dc1-db1'


def load_script():
    spec = importlib.util.spec_from_file_location('awx_surveys', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


awx_surveys = load_script()


def run(*args):
    return subprocess.run([sys.executable, SCRIPT] + list(args), capture_output=True, text=True, check=False)


def operations():
    with open(ARGUMENTS) as handle:
        return yaml.safe_load(handle)[awx_surveys.SPECS_KEY]


def committed(playbook):
    with open(os.path.join(SURVEYS, os.path.splitext(playbook)[0] + '.json')) as handle:
        return json.load(handle)


def test_the_committed_surveys_are_those_the_specs_give():
    result = run('--check')
    assert result.returncode == 0, result.stderr
    assert '%d survey(s) match' % len(operations()) in result.stdout


def test_every_operation_has_a_survey_and_a_playbook():
    assert sorted(os.listdir(SURVEYS)) == sorted(os.path.splitext(name)[0] + '.json' for name in operations())
    for playbook in operations():
        assert os.path.isfile(os.path.join(ROOT, 'playbooks', playbook)), playbook


@pytest.fixture
def drifted(tmp_path):
    """A copy of the surveys and of the specs, the specs then changed in four ways."""
    surveys = tmp_path / 'surveys'
    shutil.copytree(SURVEYS, str(surveys))
    with open(ARGUMENTS) as handle:
        text = handle.read()
    specs = yaml.safe_load(text)
    ops = specs[awx_surveys.SPECS_KEY]
    ops['failover.yml']['force']['default'] = True
    ops['failover.yml']['pgha_failover_new_input'] = {
        'type': 'int', 'default': 1, 'minimum': 0, 'description': 'Declared in the specs only.'}
    del ops['rejoin.yml']['pgha_rejoin_method']
    ops['drill.yml'] = {'dry_run': {'type': 'bool', 'default': True, 'description': 'A new playbook.'}}
    arguments = tmp_path / 'arguments.yml'
    arguments.write_text(yaml.safe_dump(specs))
    (surveys / 'retired.json').write_text(json.dumps({'name': 'x', 'description': '', 'spec': []}))
    return arguments, surveys


def test_check_names_every_drift(drifted):
    arguments, surveys = drifted
    before = sorted((path.name, path.read_text()) for path in surveys.iterdir())
    result = run('--check', '--arguments', str(arguments), '--output', str(surveys))
    assert result.returncode == 1
    for expected in ("failover.json: question force: default is 'false', the specs give 'true'",
                     'failover.json: no question for pgha_failover_new_input, which the specs declare',
                     'rejoin.json: question pgha_rejoin_method asks for an input the specs do not declare',
                     'drill.json: missing',
                     'retired.json: no playbook of'):
        assert expected in result.stderr, result.stderr
    assert sorted((path.name, path.read_text()) for path in surveys.iterdir()) == before, '--check changed files'
    # Regenerating makes them agree again.
    assert run('--arguments', str(arguments), '--output', str(surveys)).returncode == 0
    assert run('--check', '--arguments', str(arguments), '--output', str(surveys)).returncode == 0
    assert not (surveys / 'retired.json').exists()


def test_a_hand_edit_is_named(tmp_path):
    surveys = tmp_path / 'surveys'
    shutil.copytree(SURVEYS, str(surveys))
    spec = json.loads((surveys / 'rejoin.json').read_text())
    question = [item for item in spec['spec'] if item['variable'] == 'pgha_op_stream_timeout'][0]
    question['max'] = 99999
    (surveys / 'rejoin.json').write_text(json.dumps(spec, indent=2) + '\n')
    result = run('--check', '--output', str(surveys))
    assert result.returncode == 1
    assert 'rejoin.json: question pgha_op_stream_timeout: max is 99999, the specs give 3600' in result.stderr


def test_an_input_no_question_can_ask_stops_the_generation(tmp_path):
    arguments = tmp_path / 'arguments.yml'
    arguments.write_text(yaml.safe_dump({awx_surveys.SPECS_KEY: {'x.yml': {'hosts': {'type': 'list'}}}}))
    result = run('--arguments', str(arguments), '--output', str(tmp_path / 'out'))
    assert result.returncode == 2
    assert 'x.yml: hosts is of type list' in result.stderr
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('playbook', sorted(operations()))
def test_the_survey_is_one_the_awx_api_accepts(playbook):
    """The checks of the AWX API on POST .../survey_spec/ (JobTemplateSurveySpec._validate_spec_data)."""
    survey = committed(playbook)
    assert isinstance(survey['name'], str) and isinstance(survey['description'], str)
    assert isinstance(survey['spec'], list) and survey['spec']
    variables = [item['variable'] for item in survey['spec']]
    assert len(variables) == len(set(variables)), 'a variable asked twice'
    for item in survey['spec']:
        for key in ('type', 'question_name', 'variable'):
            assert isinstance(item[key], str) and item[key], (item, key)
        assert isinstance(item['required'], bool)
        assert item['type'] in AWX_TYPES
        if item.get('default', '') != '':
            assert isinstance(item['default'], AWX_TYPES[item['type']]), item
        for key in ('min', 'max'):
            assert item.get(key) is None or (isinstance(item[key], int) and not isinstance(item[key], bool)), item
        if item['type'] in ('multiplechoice', 'multiselect'):
            assert item['choices'] and all(isinstance(choice, str) for choice in item['choices'])
            assert item.get('default', item['choices'][0]) in item['choices'], item
        if item['required']:
            assert 'default' not in item, 'a required input has no default in the specs: %s' % item


def answers(survey):
    """Every answer set worth trying: the defaults alone, then each choice of each
    multiple choice and each bound of each number, with the required questions answered."""
    base = {}
    for item in survey['spec']:
        if 'default' in item:
            base[item['variable']] = item['default']
        elif item['required']:
            base[item['variable']] = item['choices'][0] if item['type'] == 'multiplechoice' else HOST
    sets = [('defaults', dict(base))]
    for item in survey['spec']:
        values = list(item.get('choices') or []) + [item[key] for key in ('min', 'max') if item.get(key) is not None]
        sets.extend(('%s=%r' % (item['variable'], value), dict(base, **{item['variable']: value})) for value in values)
    return sets


def playbook_problems(options, values, playbook):
    """What playbooks/tasks/check_arguments.yml reports for these extra vars."""
    result = ArgumentSpecValidator(input_spec(options)).validate(values)
    return [str(error) for error in result.errors] + range_problems(values, options, playbook), result


@pytest.mark.parametrize('playbook', sorted(operations()))
def test_every_answer_the_survey_admits_passes_the_playbook_validation(playbook):
    options = operations()[playbook]
    for label, values in answers(committed(playbook)):
        problems, result = playbook_problems(options, values, playbook)
        assert problems == [], '%s %s: %s' % (playbook, label, problems)
        # The strings of a yes/no question mean what they say once validated.
        for name, option in options.items():
            if option.get('type') == 'bool' and name in values:
                assert result.validated_parameters[name] is (values[name] == 'true'), (name, values[name])


@pytest.mark.parametrize('playbook', sorted(operations()))
def test_a_number_the_survey_refuses_the_playbook_refuses_too(playbook):
    options = operations()[playbook]
    base = dict(answers(committed(playbook))[0][1])
    for item in committed(playbook)['spec']:
        for key, step in (('min', -1), ('max', 1)):
            if item.get(key) is None:
                continue
            values = dict(base, **{item['variable']: item[key] + step})
            problems = playbook_problems(options, values, playbook)[0]
            assert any(item['variable'] in problem for problem in problems), (playbook, item['variable'], item[key] + step)
