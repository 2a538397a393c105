# -*- coding: utf-8 -*-
"""The roles' meta/argument_specs.yml as the up-front validation uses them
(roles/cluster_facts tasks/validate.yml merges the options of every role a host runs)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


def test_an_option_several_roles_declare_has_one_type_everywhere():
    seen = {}
    conflicts = []
    for path in sorted(glob.glob(os.path.join(ROOT, 'roles', '*', 'meta', 'argument_specs.yml'))):
        role = path.split(os.sep)[-3]
        with open(path) as handle:
            entry_points = yaml.safe_load(handle)['argument_specs']
        for entry_point, spec in entry_points.items():
            for name, option in (spec.get('options') or {}).items():
                shape = (option.get('type', 'str'), option.get('elements'), tuple(option.get('choices') or ()))
                where = '%s %s' % (role, entry_point)
                if name in seen and seen[name][1] != shape:
                    conflicts.append('%s: %s in %s, %s in %s' % (name, seen[name][1], seen[name][0], shape, where))
                seen.setdefault(name, (where, shape))
    assert conflicts == []


def test_every_role_the_validation_checks_has_its_entry_point():
    with open(os.path.join(ROOT, 'roles', 'cluster_facts', 'vars', 'inputs.yml')) as handle:
        inputs = yaml.safe_load(handle)['__pgha_role_inputs']
    for role, use in inputs.items():
        with open(os.path.join(ROOT, 'roles', role, 'meta', 'argument_specs.yml')) as handle:
            assert use['entry_point'] in yaml.safe_load(handle)['argument_specs'], role
    assert sorted(inputs) == sorted(os.listdir(os.path.join(ROOT, 'roles')))
