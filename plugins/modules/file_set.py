#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: file_set
short_description: Make a set of directories and text files on a host as given, in one call
version_added: 0.1.0
description:
  - The directories and files of O(entries), in their order, with their content,
    permissions and owners. What already matches is left alone; what differs is created
    or replaced (a file atomically, through a temporary file in the same directory that
    gets its permissions and owners before it takes the file's place).
  - One call for what the roles would otherwise do with one M(ansible.builtin.file),
    M(ansible.builtin.copy) or M(ansible.builtin.template) task each, every one of them
    a round trip to the host. Render templates on the control node with the
    C(ansible.builtin.template) lookup and pass the result as O(entries[].content).
  - A file with O(entries[].validate) is checked before it replaces the current one; when
    the check fails the module fails and the current file stays. Entries before it in the
    list may have changed already (RV(changed_paths) says which).
author:
  - pgha.multidc contributors (!UNKNOWN)
options:
  entries:
    description: The directories and files, in the order they are made.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      state:
        description: V(directory) or V(file).
        type: str
        choices: [directory, file]
        default: file
      content:
        description: The whole content of a file (text). A file needs O(entries[].content) or O(entries[].copy_from).
        type: str
      copy_from:
        description: Path of a file on the host whose content the file gets (instead of O(entries[].content)).
        type: path
      mode:
        description: Permissions (octal string such as V('0640')).
        type: raw
      owner:
        description: Owner (name or number); unchanged when not given.
        type: str
      group:
        description: Group (name or number); unchanged when not given.
        type: str
      validate:
        description:
          - Command that checks the new file before it is installed; C(%s) stands for the
            path of the new file. A non-zero exit stops the module.
        type: str
      backup:
        description: Keep a copy of a replaced file next to it, with a time stamp.
        type: bool
        default: false
      force:
        description: V(false) writes the file only when it does not exist (an existing one is left alone).
        type: bool
        default: true
attributes:
  check_mode:
    support: full
    description: Reports what would change; changes nothing.
  diff_mode:
    support: full
    description: Shows the content changes of the files.
  platform:
    support: full
    platforms: posix
    description: Runs on the managed host, as a user allowed to write the paths (usually root).
notes:
  - Only text files; the content is passed as a module argument, so keep secrets out of it
    or set C(no_log) on the task.
seealso:
  - module: ansible.builtin.template
  - module: ansible.builtin.copy
'''

EXAMPLES = r'''
- name: Install the agent, its configuration and its unit
  pgha.multidc.file_set:
    entries:
      - {path: /usr/local/lib/pgha, state: directory, mode: "0755"}
      - path: /usr/local/lib/pgha/pgha_agent.py
        content: "{{ lookup('ansible.builtin.file', 'pgha_agent.py', rstrip=false) }}"
        mode: "0644"
      - path: /etc/pgha/agent.conf
        content: "{{ lookup('ansible.builtin.template', 'agent.conf.j2') }}"
        mode: "0640"
        group: pgha
  notify: Restart the pgha health agent
'''

RETURN = r'''
changed_paths:
  description: The paths created or changed (content, permissions or owners), in order.
  returned: always
  type: list
  elements: str
  sample: [/etc/pgha/agent.conf]
backups:
  description: The copies of replaced files (O(entries[].backup)).
  returned: always
  type: list
  elements: str
  sample: []
'''

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_text


def file_args(entry, path=None):
    """The argument dict of AnsibleModule.set_fs_attributes_if_different for an entry."""
    return {'path': path or entry['path'], 'mode': entry['mode'], 'owner': entry['owner'], 'group': entry['group'],
            'secontext': [None, None, None, None], 'attributes': None}


def read_bytes(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def make_directory(module, entry, result):
    path = entry['path']
    changed = not os.path.isdir(path)
    if changed and not module.check_mode:
        os.makedirs(path)
    if os.path.isdir(path):
        changed = module.set_fs_attributes_if_different(file_args(entry), changed)
    return changed


def make_file(module, entry, result):
    path = entry['path']
    if not entry['force'] and os.path.lexists(path):
        return False
    if entry['copy_from'] is not None:
        new = read_bytes(entry['copy_from'])
        if new is None:
            module.fail_json(msg='%s: cannot read %s to copy it' % (path, entry['copy_from']), **result)
    elif entry['content'] is not None:
        new = to_bytes(entry['content'], errors='surrogate_or_strict')
    else:
        module.fail_json(msg='%s: a file needs content or copy_from' % path, **result)
    old = read_bytes(path)
    if old == new:
        return module.set_fs_attributes_if_different(file_args(entry), False)
    if module._diff:
        result['diff'].append({'before_header': path, 'after_header': path,
                               'before': to_text(old or b'', errors='surrogate_or_strict'),
                               'after': to_text(new, errors='surrogate_or_strict')})
    if module.check_mode:
        return True
    handle, temporary = tempfile.mkstemp(prefix='.pgha-', dir=os.path.dirname(path))
    try:
        with os.fdopen(handle, 'wb') as out:
            out.write(new)
        attributes = dict(entry)
        if old is not None:  # a replaced file keeps its mode and owners unless they are given
            current = os.stat(path)
            attributes['mode'] = attributes['mode'] or '0%03o' % (current.st_mode & 0o7777)
            attributes['owner'] = attributes['owner'] or str(current.st_uid)
            attributes['group'] = attributes['group'] or str(current.st_gid)
        elif not attributes['mode']:
            attributes['mode'] = '0644'
        module.set_fs_attributes_if_different(file_args(attributes, temporary), False)
        if entry['validate']:
            if '%s' not in entry['validate']:
                module.fail_json(msg='%s: validate must contain %%s (the path of the new file)' % path, **result)
            rc, out, err = module.run_command(entry['validate'] % temporary)
            if rc != 0:
                module.fail_json(msg='%s: the new file fails its check (%s), the current one stays: %s'
                                     % (path, entry['validate'], (err or out).strip()), **result)
        if entry['backup'] and old is not None:
            result['backups'].append(module.backup_local(path))
        os.rename(temporary, path)
        temporary = None
    finally:
        if temporary and os.path.exists(temporary):
            os.unlink(temporary)
    return True


def main():
    module = AnsibleModule(
        argument_spec=dict(entries=dict(type='list', elements='dict', required=True, mutually_exclusive=[('content', 'copy_from')], options=dict(
            path=dict(type='path', required=True),
            state=dict(type='str', choices=['directory', 'file'], default='file'),
            content=dict(type='str'),
            copy_from=dict(type='path'),
            mode=dict(type='raw'),
            owner=dict(type='str'),
            group=dict(type='str'),
            validate=dict(type='str'),
            backup=dict(type='bool', default=False),
            force=dict(type='bool', default=True),
        ))),
        supports_check_mode=True,
    )
    result = {'changed': False, 'changed_paths': [], 'backups': [], 'diff': []}
    for entry in module.params['entries']:
        if not os.path.isabs(entry['path']):
            module.fail_json(msg='%s: the path must be absolute' % entry['path'], **result)
        make = make_directory if entry['state'] == 'directory' else make_file
        if make(module, entry, result):
            result['changed_paths'].append(entry['path'])
    result['changed'] = bool(result['changed_paths'])
    if not module._diff:
        del result['diff']
    module.exit_json(**result)


if __name__ == '__main__':
    main()
