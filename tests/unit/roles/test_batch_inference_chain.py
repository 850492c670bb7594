"""The batch_inference role is a chain of tasks: no task runs in the background, and the input is checked,
split and uploaded before the first task that writes to the cluster, so a refused input creates nothing."""

import os

import yaml

import ansible_collections.opensearch.ml_commons as collection

TASKS = os.path.join(list(collection.__path__)[0], "roles", "batch_inference", "tasks")
CLUSTER_WRITES = ("opensearch.ml_commons.ml_model_group", "opensearch.ml_commons.ml_connector", "opensearch.ml_commons.ml_model")


def tasks_of(name):
    """The tasks of a task file in order, those of blocks included."""
    with open(os.path.join(TASKS, name)) as handle:
        pending = list(yaml.safe_load(handle))
    found = []
    while pending:
        task = pending.pop(0)
        pending[0:0] = task.get("block", [])
        found.append(task)
    return found


def module_of(task):
    return next((key for key in task if key.startswith(("opensearch.", "ansible.builtin."))), None)


def test_no_task_runs_in_the_background():
    for name in os.listdir(TASKS):
        for task in tasks_of(name):
            assert not {"async", "poll"} & set(task), task["name"]
            assert module_of(task) != "ansible.builtin.async_status", task["name"]


def test_the_input_is_split_and_uploaded_before_anything_is_created_in_the_cluster():
    modules = [module_of(task) for task in tasks_of("present.yml")]
    first_write = min(modules.index(module) for module in CLUSTER_WRITES)
    assert modules.index("opensearch.ml_commons.batch_input_split") < modules.index("opensearch.ml_commons.openai_file") < first_write
