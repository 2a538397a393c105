# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_probe on the control node runs in the controller's own process.

The operations ask every database host from the control node at the start of a failover
(the split brain guard's witness). As a module, that costs a Python process and its
imports on the control node before the first probe is sent (0.3-0.5 s on two cores,
more when they are busy), while the cluster has no primary. On a local connection the
probes run here instead, with the same code and the same checks of the options; on any
other connection the module runs on the target host as usual.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.pgha.multidc.plugins.module_utils.probe import (
    ARGUMENT_SPEC, MUTUALLY_EXCLUSIVE, REQUIRED_ONE_OF, probe)


class ActionModule(ActionBase):

    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        if self._connection.transport != 'local':
            result.update(self._execute_module(module_name='pgha.multidc.pg_probe', task_vars=task_vars))
            return result
        validated = ArgumentSpecValidator(ARGUMENT_SPEC, mutually_exclusive=MUTUALLY_EXCLUSIVE,
                                          required_one_of=REQUIRED_ONE_OF).validate(self._task.args)
        if validated.error_messages:
            result.update(failed=True, msg='Unsupported parameters or values for pg_probe: %s'
                          % '; '.join(validated.error_messages))
            return result
        result.update(probe(validated.validated_parameters))
        return result
