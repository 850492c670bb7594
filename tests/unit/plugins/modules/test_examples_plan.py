"""The integration target ``examples``'s generator (tests/integration/targets/examples/files/examples.py): every example of
the collection is in its plan exactly once, an address it does not stand in for or a change without a reason stops it,
and its check of the run's output counts a skipped or missing example task as a failure."""

import importlib.util
import os

import pytest

import ansible_collections.opensearch.ml_commons as collection

COLLECTION_ROOT = os.path.dirname(collection.__file__) if getattr(collection, "__file__", None) else list(collection.__path__)[0]
TARGET_FILES = os.path.join(COLLECTION_ROOT, "tests", "integration", "targets", "examples", "files")


def load_generator():
    spec = importlib.util.spec_from_file_location("examples_generator", os.path.join(TARGET_FILES, "examples.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


examples = load_generator()


def real_plan():
    import yaml
    with open(os.path.join(TARGET_FILES, "plan.yml")) as handle:
        return yaml.safe_load(handle)


def test_the_plan_runs_every_example_once():
    plays, inventory, variables, steps, names = examples.build(COLLECTION_ROOT, real_plan(), "/glue")
    assert len(steps) == len(real_plan()["steps"])
    assert "Upload each part" in names and "Show the job's status and request counts" in names
    # Every address became the test bed's.
    text = repr(plays) + repr(inventory) + repr(variables)
    assert "example.com" not in text and "api.openai.com" not in text and "localhost:9200" not in text
    assert set(inventory["all"]["children"]["clusters"]["hosts"]) == {"search-eu", "search-us"}


def test_a_task_the_plan_leaves_out_stops_it():
    plan = real_plan()
    plan["steps"] = [step for step in plan["steps"] if step.get("example") != "ml_task_info EXAMPLES"]
    with pytest.raises(examples.PlanError, match=r"ml_task_info EXAMPLES: the plan runs its tasks \[\] of \[1, 2, 3\]"):
        examples.build(COLLECTION_ROOT, plan, "/glue")


def test_a_task_run_twice_stops_it():
    plan = real_plan()
    plan["steps"].append({"example": "ml_model EXAMPLES", "tasks": [1]})
    with pytest.raises(examples.PlanError, match=r"ml_model EXAMPLES: the plan runs its tasks \[1, 1, 2, 3\]"):
        examples.build(COLLECTION_ROOT, plan, "/glue")


def test_an_unknown_address_stops_it():
    with pytest.raises(examples.PlanError, match="names https://search.example.org:9200, which is no address"):
        examples.localize("somewhere", {"url": "https://search.example.org:9200"})
    assert examples.localize("somewhere", ["see https://api.openai.com/v1/batches"]) == ["see {{ openai_base_url }}/batches"]


def test_a_change_needs_its_reason():
    with pytest.raises(examples.PlanError, match="a change without its reason"):
        examples.changed_tasks("x", [{"name": "a"}], {"change": [{"task": 1, "set": {"check_mode": True}}]})
    numbers, tasks = examples.changed_tasks("x", [{"name": "a", "m": {"b": 1}}], {"change": [{"task": 1, "set": {"m": {"c": 2}}, "why": "w"}]})
    assert numbers == [1] and tasks == [{"name": "a", "m": {"b": 1, "c": 2}}]


OUTPUT = """
PLAY [p] ***********************************************************************

TASK [Ran everywhere] **********************************************************
ok: [search-eu]
changed: [search-us]

TASK [Looped] ******************************************************************
ok: [localhost] => (item=a)
skipping: [localhost] => (item=b)

TASK [Skipped on one host] *****************************************************
ok: [search-eu]
skipping: [search-us]

TASK [Skipped] *****************************************************************
skipping: [localhost]

PLAY RECAP *********************************************************************
localhost                  : ok=2    changed=0    unreachable=0    failed=0    skipped=1
"""


def test_the_check_counts_a_skip_or_a_missing_task_as_not_run():
    names = ["Ran everywhere", "Looped", "Skipped on one host", "Skipped", "Never reached"]
    assert examples.not_run(OUTPUT, names) == ["Skipped on one host", "Skipped", "Never reached"]
