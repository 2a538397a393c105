# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The options of plugins/module_utils/pgbackrest_run.py:pgbackrest_argument_spec().
    DOCUMENTATION = r'''
options:
  stanza:
    description: The pgBackRest stanza (the cluster's name in the repository).
    type: str
    required: true
  config:
    description:
      - The pgBackRest configuration file, given to every command as C(--config).
      - The roles write it readable by the owner of the cluster only, as it may carry the
        repository's cipher passphrase.
    type: path
    default: /etc/pgbackrest/pgbackrest.conf
  executable:
    description: The pgbackrest program.
    type: path
    default: pgbackrest
  timeout:
    description: Seconds a pgBackRest command may take before it is stopped and the task fails.
    type: int
    default: 3600
notes:
  - Run it as the user that owns the cluster and the repository (usually C(postgres),
    with C(become_user)); pgBackRest refuses to run as root for most commands.
  - Messages of a failed command name pgBackRest's error code, its message and its hints.
requirements:
  - pgBackRest 2.45 or later (Debian's C(pgbackrest) package).
'''
