"""The batch_inference role's index loop: the input's default path, the order of the chain around the files steps,
a teardown that never touches an index, and the documents batch_inference_result reports."""

import os

import pytest
import yaml

from ansible_collections.opensearch.ml_commons.tests.unit.roles.test_batch_inference_chain import TASKS, module_of, tasks_of
from ansible_collections.opensearch.ml_commons.tests.unit.roles.test_batch_inference_connectors import rendered, trust_as_template

INDEX_MODULES = ("opensearch.ml_commons.index_batch_input", "opensearch.ml_commons.index_batch_output")


@pytest.mark.parametrize("source_index, download_dir, expected", [
    ("", "/work/results", ""),
    ("articles", "/work/results", "/work/results/articles.jsonl"),
    # No directory to put it in: the role's first check names what is missing.
    ("articles", "", ""),
])
def test_the_input_is_exported_into_the_download_directory(source_index, download_dir, expected):
    assert rendered("batch_inference_input_file", batch_inference_source_index=source_index,
                    batch_inference_download_dir=download_dir) == expected


def test_the_merged_output_and_parts_are_named_after_the_index():
    names = rendered("[batch_inference_parts_dir, batch_inference_output_file, batch_inference_errors_file]",
                     batch_inference_source_index="articles", batch_inference_download_dir="/r", inventory_hostname="db1")
    assert names == ["/r/articles.jsonl.parts", "/r/articles.db1.output.jsonl", "/r/articles.db1.errors.jsonl"]


def test_the_export_comes_first_and_the_write_back_after_the_merge():
    modules = [module_of(task) for task in tasks_of("present.yml")]
    export, write_back = (modules.index(module) for module in INDEX_MODULES)
    assert export < modules.index("opensearch.ml_commons.batch_input_split")
    merge = len(modules) - 1 - modules[::-1].index("opensearch.ml_commons.batch_output_merge")
    assert merge < write_back


def test_the_teardown_never_touches_an_index():
    modules = set(module_of(task) for task in tasks_of("absent.yml"))
    assert not modules & set(INDEX_MODULES)
    assert not [task["name"] for task in tasks_of("absent.yml") if module_of(task) == "ansible.builtin.uri"]


def documents(**variables):
    """``batch_inference_result.documents`` as the role publishes it, from the results registered before."""
    with open(os.path.join(TASKS, "result.yml")) as handle:
        publish = next(task for task in yaml.safe_load(handle) if task["name"] == "Publish the IDs, the jobs and the results")
    return rendered("__documents", __documents=trust_as_template(publish["ansible.builtin.set_fact"]["batch_inference_result"]["documents"]),
                    __batch_inference_present=True, **variables)


EXPORTED = {"requests": 2, "unchanged": 5, "skipped_count": 1, "skipped_documents": [{"_id": "d", "reason": "text is empty"}]}


def test_without_a_source_index_there_are_no_documents():
    # ansible-core before 2.19 renders a lone none as "".
    assert documents(batch_inference_source_index="") in (None, "")


def test_the_documents_sent_and_written():
    written = {"target_index": "articles", "written": 2, "failed_documents": 0, "failures": []}
    assert documents(batch_inference_source_index="articles", __batch_inference_export=EXPORTED, __batch_inference_written=written) == {
        "source_index": "articles", "target_index": "articles", "sent": 2, "unchanged": 5, "skipped": 1,
        "skipped_documents": [{"_id": "d", "reason": "text is empty"}], "written": 2, "failed": 0, "failures": []}


def test_nothing_written_while_the_job_runs_or_when_nothing_was_sent():
    # The write-back skipped: its registered result has no counts.
    result = documents(batch_inference_source_index="articles", batch_inference_target_index="vectors",
                       __batch_inference_export=EXPORTED, __batch_inference_written={"skipped": True, "changed": False})
    assert (result["target_index"], result["sent"], result["written"], result["failed"], result["failures"]) == ("vectors", 2, 0, 0, [])
