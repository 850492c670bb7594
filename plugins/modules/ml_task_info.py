#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ml_task_info
short_description: Read ML Commons tasks, with the provider's job for batch inference tasks
version_added: 0.1.0
description:
  - Returns one task by ID, or the tasks matching a model, a task type and a state (the filters combine), or all of them,
    oldest first, paging through the search API.
  - A batch inference task (C(BATCH_PREDICTION)) includes C(remote_job), the provider's job object, for OpenAI the
    Batch object with its status, file IDs and request counts. Its whole numbers are integers (ML Commons turns them into
    floats).
  - By ID, ML Commons asks the provider for a batch job's current status before answering (and stores it). When that
    call fails, for example because the provider is unreachable, the module warns and returns the task as last stored.
    A search returns the tasks as last stored; ML Commons 2.19 and later refresh running batch tasks every minute.
  - Returns an empty list when nothing matches.
author:
  - opensearch.ml_commons maintainers (!UNKNOWN)
extends_documentation_fragment:
  - opensearch.ml_commons.connection
  - opensearch.ml_commons.attributes.INFO
options:
  task_id:
    description:
      - Return only the task with this ID.
    type: str
  model_id:
    description:
      - Return only tasks of this model.
    type: str
  task_type:
    description:
      - Return only tasks of this type, for example C(BATCH_PREDICTION), C(REGISTER_MODEL) or C(DEPLOY_MODEL) (any case).
    type: str
  task_state:
    description:
      - Return only tasks in this state, for example C(RUNNING), C(COMPLETED), C(FAILED) or C(CANCELLED) (any case).
      - The alias C(state) is deprecated, as C(state) names what a module makes, not a filter; it will be
        removed in version 1.0.0.
    type: str
    aliases: [state]
"""

EXAMPLES = r"""
- name: The running batch jobs of a model
  opensearch.ml_commons.ml_task_info:
    model_id: "{{ model.model_id }}"
    task_type: BATCH_PREDICTION
    task_state: RUNNING
  register: running

- name: Their provider job IDs
  ansible.builtin.debug:
    msg: "{{ running.tasks | map(attribute='remote_job') | map(attribute='id') }}"

- name: One batch job with its current status at the provider
  opensearch.ml_commons.ml_task_info:
    task_id: "{{ batch.task_id }}"
  register: one
"""

RETURN = r"""
tasks:
  description: The matching tasks, oldest first, each with its ID.
  returned: always
  type: list
  elements: dict
  sample:
    - task_id: Mz3FEY8Bz9_1t9trBeKO
      model_id: lyjxwZABNrAVdFa9zrcZ
      task_type: BATCH_PREDICTION
      function_name: REMOTE
      state: COMPLETED
      create_time: 1714000000000
      remote_job:
        id: batch_6751fc3b4dfc8190abc85e87a2b62b1e
        status: completed
        input_file_id: file-YbowBByiyVJN89oSZo2Enu9W
        output_file_id: file-9R5a1qUeYhqS3Jx9BT8hPxjd
        request_counts:
          total: 3
          completed: 3
          failed: 0
"""

from ansible_collections.opensearch.ml_commons.plugins.module_utils.batch.jobs import integral_numbers, read_task, stored_task
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import MLCommonsError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.module import MLCommonsModule
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.resource import TASK, search, with_values

# Each filter's option, and the task field it matches.
FILTERS = (("model_id", "model_id"), ("task_type", "task_type"), ("task_state", "state"))


def wanted_values(params):
    """The filters set, by task field, in the form ML Commons stores them (task types and states are upper-case enums)."""
    wanted = {}
    for option, field in FILTERS:
        if params[option]:
            wanted[field] = params[option] if option == "model_id" else params[option].upper()
    return wanted


def task_by_id(module, client, task_id):
    """The task read fresh; if asking the provider fails, the stored copy with a warning."""
    try:
        return read_task(client, task_id)
    except MLCommonsError as error:
        stored = stored_task(client, task_id)
        if stored is None:
            raise
        module.warn("Returning task %s as last stored: ML Commons could not refresh it (%s)" % (task_id, error))
        return stored


def run(module, client):
    wanted = wanted_values(module.params)
    if module.params["task_id"]:
        task = task_by_id(module, client, module.params["task_id"])
        tasks = [task] if task is not None else []
    else:
        tasks = search(client, TASK, [{"term": {name: value}} for name, value in sorted(wanted.items())])
    matching = with_values(tasks, wanted)
    for task in matching:
        if "remote_job" in task:
            task["remote_job"] = integral_numbers(task["remote_job"])
    return {"changed": False, "tasks": matching}


ARGUMENT_SPEC = dict(
    task_id=dict(type="str"),
    model_id=dict(type="str"),
    task_type=dict(type="str"),
    task_state=dict(type="str", aliases=["state"], deprecated_aliases=[dict(name="state", version="1.0.0", collection_name="opensearch.ml_commons")]),
)


def main():
    MLCommonsModule(argument_spec=ARGUMENT_SPEC).execute(run)


if __name__ == "__main__":
    main()
