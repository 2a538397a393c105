# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ansible-lint rule ``pgha-var-prefix``: role variables belong to the pgha_ namespace.

The stock ``var-naming[no-role-prefix]`` wants ``<role>_`` on every role variable; this
collection's design contract (docs/design.md) instead shares inventory variables across
roles under ``pgha_`` (``pgha_pg_port``, ``pgha_datacenters``, ...), a role's own public
variables read ``pgha_<role>_...`` and internal ones ``__pgha_...``. This rule enforces that
namespace for the variables a role defines in defaults/ and vars/, so a role cannot leak
an unprefixed name (``port``, ``firewall_rules``) into every play that uses it.
Loaded through ``rulesdir`` in .ansible-lint (enabled there with ``enable_list``).
"""

from __future__ import annotations

import re

from ansiblelint.rules import AnsibleLintRule
from ansiblelint.utils import parse_yaml_from_file

_NAME = re.compile(r'^(__)?pgha_[a-z0-9_]+$')


class PghaVarPrefixRule(AnsibleLintRule):
    """Role variables start with pgha_ (public) or __pgha_ (internal)."""

    id = 'pgha-var-prefix'
    description = ('Variables defined in a role\'s defaults/ or vars/ must be named '
                   'pgha_... (public) or __pgha_... (internal), in lower case.')
    severity = 'MEDIUM'
    tags = ['idiom', 'pgha']
    version_changed = '0.1.0'

    def matchyaml(self, file):
        if str(file.kind) != 'vars' or not file.role or not file.data:
            return []
        data = parse_yaml_from_file(str(file.path))
        if not isinstance(data, dict):
            return []
        lines = file.content.splitlines()
        results = []
        for key in data:
            if isinstance(key, str) and _NAME.match(key):
                continue
            lineno = next((i + 1 for i, line in enumerate(lines) if line.startswith('%s:' % key)), 1)
            results.append(self.create_matcherror(
                message='%s (vars: %s)' % (self.shortdesc, key),
                lineno=lineno, filename=file, tag=self.id))
        return results
