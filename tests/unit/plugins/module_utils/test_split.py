"""The split of a batch input on real files: parts within both limits, the whole input checked first, re-runs that write nothing."""

import hashlib
import json
import os
import stat

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.batch_input import BatchInputError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.split import Split
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule

LONG_AGO = 1000000000


def request(custom_id, url="/v1/embeddings", model="m", **changes):
    line = {"custom_id": custom_id, "method": "POST", "url": url, "body": {"model": model, "input": "x"}}
    line.update(changes)
    return json.dumps(line, separators=(",", ":"))


def write_input(tmp_path, lines, name="input.jsonl"):
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def split(tmp_path, src, check_mode=False, dest=None, max_requests=50000, max_bytes=190000000, endpoint=None, module=None, **formats):
    """The split's outcome as one dict: changed, the parts and the input's size and SHA-256, the diff."""
    module = module or FakeModule({}, check_mode)
    changed, before, after, found = Split(module, src, dest or str(tmp_path / "parts"), max_requests, max_bytes, endpoint, **formats).apply()
    return dict(found, changed=changed, diff={"before": before, "after": after})


def contents(result):
    return [open(part["path"]).read().splitlines() for part in result["parts"]]


def files_in(directory):
    return sorted(os.listdir(str(directory))) if os.path.isdir(str(directory)) else []


def age(directory):
    """Set every file in ``directory`` to an old mtime, so that a rewrite shows."""
    for name in os.listdir(str(directory)):
        os.utime(os.path.join(str(directory), name), (LONG_AGO, LONG_AGO))


def mtimes(directory):
    return dict((name, os.stat(os.path.join(str(directory), name)).st_mtime) for name in os.listdir(str(directory)))


def test_parts_hold_consecutive_requests_up_to_max_requests_in_input_order(tmp_path):
    lines = [request("r%d" % n) for n in range(7)]
    result = split(tmp_path, write_input(tmp_path, lines), max_requests=3)
    assert result["changed"] and result["requests"] == 7
    assert contents(result) == [lines[0:3], lines[3:6], lines[6:7]]
    assert [(part["index"], part["first_line"], part["lines"]) for part in result["parts"]] == [(1, 1, 3), (2, 4, 3), (3, 7, 1)]
    assert [os.path.basename(part["path"]) for part in result["parts"]] == [
        "input.part-00001.jsonl", "input.part-00002.jsonl", "input.part-00003.jsonl"]
    for part in result["parts"]:
        data = open(part["path"], "rb").read()
        assert (part["bytes"], part["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    src = open(str(tmp_path / "input.jsonl"), "rb").read()
    assert (result["bytes"], result["sha256"]) == (len(src), hashlib.sha256(src).hexdigest())


@pytest.mark.parametrize("slack, per_part", [(0, 2), (1, 2), (-1, 1)])
def test_parts_stay_within_max_bytes(tmp_path, slack, per_part):
    lines = [request("r%d" % n) for n in range(5)]
    size = len(lines[0]) + 1
    assert all(len(line) + 1 == size for line in lines)
    result = split(tmp_path, write_input(tmp_path, lines), max_bytes=2 * size + slack)
    assert [part["lines"] for part in result["parts"]] == [per_part] * (5 // per_part) + ([1] if 5 % per_part else [])
    assert all(part["bytes"] <= 2 * size + slack for part in result["parts"])
    assert sum(contents(result), []) == lines


def test_blank_lines_are_dropped_and_first_line_counts_them(tmp_path):
    src = write_input(tmp_path, ["", request("a"), "  ", request("b"), "", "", request("c")])
    result = split(tmp_path, src, max_requests=2)
    assert contents(result) == [[request("a"), request("b")], [request("c")]]
    assert [(part["first_line"], part["lines"]) for part in result["parts"]] == [(2, 2), (7, 1)]
    assert result["requests"] == 3


def test_a_custom_id_repeated_in_another_part_fails_before_anything_is_written(tmp_path):
    lines = [request("r%d" % n) for n in range(12)]
    lines[9] = request("r1")
    with pytest.raises(BatchInputError) as caught:
        split(tmp_path, write_input(tmp_path, lines), max_requests=3)
    assert "Line 10 of" in str(caught.value) and "repeats the custom_id 'r1' of line 2" in str(caught.value)
    assert caught.value.details == {"line": 10}
    assert not os.path.exists(str(tmp_path / "parts"))


@pytest.mark.parametrize("bad_line, problem", [
    ('{"custom_id": "b", "method": "POST",', "is not valid JSON"),
    (request("b", method="GET"), "has method 'GET'; the Batch API takes only POST"),
    (request("b", url="/v1/chat/completions"), "has url '/v1/chat/completions', not the batch endpoint '/v1/embeddings'"),
    (request("b", model="other"), "names the model 'other', not 'm'"),
    (request(""), "has a custom_id that is not a non-empty string"),
])
def test_a_bad_line_fails_the_split_naming_it_and_nothing_is_written(tmp_path, bad_line, problem):
    src = write_input(tmp_path, [request("a"), request("b2"), bad_line, request("c")])
    with pytest.raises(BatchInputError) as caught:
        split(tmp_path, src, max_requests=1, endpoint="/v1/embeddings")
    assert str(caught.value).startswith("Line 3 of %s %s" % (src, problem))
    assert not os.path.exists(str(tmp_path / "parts"))


def test_a_line_larger_than_max_bytes_is_named(tmp_path):
    src = write_input(tmp_path, [request("a"), request("b", body={"model": "m", "input": "x" * 500}), request("c")])
    with pytest.raises(BatchInputError) as caught:
        split(tmp_path, src, max_bytes=200)
    assert str(caught.value).startswith("Line 2 of %s holds" % src) and "max_bytes is 200" in str(caught.value)
    assert caught.value.details == {"line": 2}


def test_limits_below_zero_and_a_dest_that_is_a_file_are_refused(tmp_path):
    src = write_input(tmp_path, [request("a")])
    with pytest.raises(ConfigurationError, match="max_requests is -1; give the most a part may hold, or 0 for no limit"):
        split(tmp_path, src, max_requests=-1)
    with pytest.raises(ConfigurationError, match="min_requests is 3; give at least 1, and no more than max_requests"):
        split(tmp_path, src, max_requests=2, min_requests=3)
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigurationError, match="is not a directory"):
        split(tmp_path, src, dest=str(tmp_path / "file"))


def test_a_rerun_neither_checks_nor_writes(tmp_path, monkeypatch):
    src = write_input(tmp_path, [request("r%d" % n) for n in range(5)])
    first = split(tmp_path, src, max_requests=2)
    age(tmp_path / "parts")
    before = mtimes(tmp_path / "parts")
    assert sorted(before) == ["input.part-00001.jsonl", "input.part-00002.jsonl", "input.part-00003.jsonl", "input.parts.json"]

    def no_check(*args):
        raise AssertionError("the input was checked again")

    monkeypatch.setattr(Split, "checked", no_check)
    again = split(tmp_path, src, max_requests=2)
    assert not again["changed"]
    assert dict((key, again[key]) for key in ("parts", "requests", "bytes", "sha256")) == dict(
        (key, first[key]) for key in ("parts", "requests", "bytes", "sha256"))
    assert mtimes(tmp_path / "parts") == before
    assert again["diff"]["before"] == again["diff"]["after"]


def test_parts_in_place_are_not_rewritten_when_the_manifest_is_lost(tmp_path):
    src = write_input(tmp_path, [request("r%d" % n) for n in range(5)])
    split(tmp_path, src, max_requests=2)
    os.remove(str(tmp_path / "parts" / "input.parts.json"))
    age(tmp_path / "parts")
    before = mtimes(tmp_path / "parts")
    result = split(tmp_path, src, max_requests=2)
    assert result["changed"]
    assert mtimes(tmp_path / "parts") == dict(before, **{"input.parts.json": mtimes(tmp_path / "parts")["input.parts.json"]})
    assert not split(tmp_path, src, max_requests=2)["changed"]


@pytest.mark.parametrize("manifest", [
    "{not json", "[]", json.dumps({"parts": "x"}),
    json.dumps({"src": {"sha256": "0", "bytes": 1}, "requests": 1, "limits": {}, "parts": [{"name": "input.part-00001.jsonl"}]}),
    None,
])
def test_a_manifest_that_cannot_be_read_or_names_other_files_is_written_again(tmp_path, manifest):
    src = write_input(tmp_path, [request("r%d" % n) for n in range(5)])
    first = split(tmp_path, src, max_requests=2)
    path = tmp_path / "parts" / "input.parts.json"
    if manifest is None:
        recorded = json.loads(path.read_text())
        recorded["parts"][0]["name"] = "../input.jsonl"
        manifest = json.dumps(recorded)
    path.write_text(manifest)
    again = split(tmp_path, src, max_requests=2)
    assert again["changed"] and again["parts"] == first["parts"]
    assert not split(tmp_path, src, max_requests=2)["changed"]


def test_other_limits_or_content_split_again_and_stale_parts_go(tmp_path):
    lines = [request("r%d" % n) for n in range(8)]
    src = write_input(tmp_path, lines)
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "other.part-00009.jsonl").write_text("not ours")
    split(tmp_path, src, max_requests=2)
    age(tmp_path / "parts")
    result = split(tmp_path, src, max_requests=4)
    assert result["changed"] and contents(result) == [lines[0:4], lines[4:8]]
    assert files_in(tmp_path / "parts") == ["input.part-00001.jsonl", "input.part-00002.jsonl", "input.parts.json", "other.part-00009.jsonl"]
    assert result["diff"] == {
        "before": {"parts": [{"name": "input.part-%05d.jsonl" % n, "lines": 2, "bytes": 2 * (len(lines[0]) + 1)} for n in (1, 2, 3, 4)]},
        "after": {"parts": [{"name": "input.part-%05d.jsonl" % n, "lines": 4, "bytes": 4 * (len(lines[0]) + 1)} for n in (1, 2)]},
    }
    lines[5] = request("changed")
    write_input(tmp_path, lines)
    changed = split(tmp_path, src, max_requests=4)
    assert changed["changed"] and contents(changed) == [lines[0:4], lines[4:8]]
    assert changed["parts"][0] == result["parts"][0]


def test_check_mode_writes_nothing_and_predicts(tmp_path):
    src = write_input(tmp_path, [request("r%d" % n) for n in range(5)])
    planned = split(tmp_path, src, check_mode=True, max_requests=2)
    assert planned["changed"] and [part["lines"] for part in planned["parts"]] == [2, 2, 1]
    assert not os.path.exists(str(tmp_path / "parts"))
    assert planned["diff"] == {"before": {"parts": []}, "after": {"parts": [
        {"name": os.path.basename(part["path"]), "lines": part["lines"], "bytes": part["bytes"]} for part in planned["parts"]]}}
    done = split(tmp_path, src, max_requests=2)
    assert done["parts"] == planned["parts"]
    age(tmp_path / "parts")
    before = mtimes(tmp_path / "parts")
    assert not split(tmp_path, src, check_mode=True, max_requests=2)["changed"]
    assert split(tmp_path, src, check_mode=True, max_requests=1)["changed"]
    assert mtimes(tmp_path / "parts") == before


def test_a_source_that_changes_between_check_and_write_leaves_no_wrong_part(tmp_path, monkeypatch):
    lines = [request("r%d" % n) for n in range(4)]
    src = write_input(tmp_path, lines)
    checked = Split.checked

    def check_then_change(*args):
        manifest = checked(*args)
        write_input(tmp_path, lines[:2] + [request("x2"), request("x3")])
        return manifest

    monkeypatch.setattr(Split, "checked", check_then_change)
    with pytest.raises(ConfigurationError) as caught:
        split(tmp_path, src, max_requests=2)
    assert "changed while it was split: part 2 is not what the check read" in str(caught.value)
    assert caught.value.details["written"] == [str(tmp_path / "parts" / "input.part-00001.jsonl")]
    assert files_in(tmp_path / "parts") == ["input.part-00001.jsonl"]


def test_a_write_that_fails_names_what_was_written(tmp_path, monkeypatch):
    src = write_input(tmp_path, [request("r%d" % n) for n in range(5)])
    real_write_part = Split.write_part
    calls = []

    def full_disk_at_part_2(self, part, requests):
        calls.append(part["index"])
        if part["index"] == 2:
            raise OSError(28, "No space left on device")
        return real_write_part(self, part, requests)

    monkeypatch.setattr(Split, "write_part", full_disk_at_part_2)
    with pytest.raises(ConfigurationError) as caught:
        split(tmp_path, src, max_requests=2)
    assert str(caught.value) == (
        "Cannot write the parts of %s to %s: No space left on device. Parts written: %s. Run again once that is fixed; "
        "parts already in place are kept." % (src, tmp_path / "parts", tmp_path / "parts" / "input.part-00001.jsonl"))
    assert files_in(tmp_path / "parts") == ["input.part-00001.jsonl"]
    monkeypatch.setattr(Split, "write_part", real_write_part)
    assert split(tmp_path, src, max_requests=2)["changed"]
    assert files_in(tmp_path / "parts") == ["input.part-00001.jsonl", "input.part-00002.jsonl", "input.part-00003.jsonl", "input.parts.json"]


def test_a_part_that_cannot_be_moved_into_place_leaves_no_temporary_file(tmp_path, monkeypatch):
    src = write_input(tmp_path, [request("a"), request("b")])

    def failing_move(source, dest):
        raise OSError(13, "Permission denied")

    module = FakeModule({})
    monkeypatch.setattr(module, "atomic_move", failing_move)
    with pytest.raises(ConfigurationError, match="Permission denied. Parts written: none"):
        split(tmp_path, src, max_requests=1, module=module)
    assert files_in(tmp_path / "parts") == []


def test_a_manifest_that_cannot_be_written_fails_clearly(tmp_path, monkeypatch):
    src = write_input(tmp_path, [request("a")])

    def failing_move(source, dest):
        raise OSError(13, "Permission denied")

    module = FakeModule({})
    monkeypatch.setattr(module, "atomic_move", failing_move)
    with pytest.raises(ConfigurationError, match="Cannot write the manifest .*Permission denied"):
        split(tmp_path, src, module=module)
    assert files_in(tmp_path / "parts") == []


def test_an_input_that_fits_one_job_is_its_own_part_and_nothing_is_written(tmp_path):
    src = write_input(tmp_path, [request("a"), request("b")])
    result = split(tmp_path, src)
    assert [(part["path"], part["lines"]) for part in result["parts"]] == [(src, 2)]
    assert files_in(tmp_path / "parts") == ["input.parts.json"]
    assert result["changed"] is True
    assert split(tmp_path, src)["changed"] is False
    # With a blank line it is not the same content as one part: the part is written.
    src = write_input(tmp_path, [request("a"), "", request("b")], name="blank.jsonl")
    result = split(tmp_path, src)
    assert [os.path.basename(part["path"]) for part in result["parts"]] == ["blank.part-00001.jsonl"]


def test_an_input_that_grows_past_one_job_is_split_and_one_that_shrinks_loses_its_parts(tmp_path):
    src = write_input(tmp_path, [request("a"), request("b"), request("c")])
    assert len(split(tmp_path, src, max_requests=2)["parts"]) == 2
    write_input(tmp_path, [request("a")])
    result = split(tmp_path, src, max_requests=2)
    assert [part["path"] for part in result["parts"]] == [src]
    assert files_in(tmp_path / "parts") == ["input.parts.json"]


@pytest.mark.usefixtures("open_umask")
def test_parts_manifest_and_directory_are_private_whatever_the_umask(tmp_path):
    src = write_input(tmp_path, [request("r%d" % n) for n in range(3)])
    result = split(tmp_path, src, dest=str(tmp_path / "out" / "parts"), max_requests=2)
    written = [part["path"] for part in result["parts"]] + [str(tmp_path / "out" / "parts" / "input.parts.json")]
    modes = [stat.S_IMODE(os.stat(path).st_mode) for path in written]
    assert modes == [0o600] * 3
    assert [stat.S_IMODE(os.stat(str(path)).st_mode) for path in (tmp_path / "out", tmp_path / "out" / "parts")] == [0o700, 0o700]


def record(record_id, text="x"):
    return json.dumps({"recordId": record_id, "modelInput": {"inputText": text}}, separators=(",", ":"))


def test_zero_limits_leave_the_input_whole(tmp_path):
    src = write_input(tmp_path, [request("r%d" % n) for n in range(5)])
    result = split(tmp_path, src, max_requests=0, max_bytes=0)
    assert [part["path"] for part in result["parts"]] == [src] and result["requests"] == 5


def test_bedrock_records_are_split_into_equal_parts_none_under_min_requests(tmp_path):
    lines = [record("r%d" % n) for n in range(250)]
    result = split(tmp_path, write_input(tmp_path, lines), max_requests=100, record_format="bedrock", min_requests=60)
    # By max_requests alone, 100, 100 and 50: the last would hold too few.
    assert [part["lines"] for part in result["parts"]] == [84, 84, 82]
    assert sum(contents(result), []) == lines


def test_bedrock_parts_by_max_requests_when_the_last_part_is_large_enough(tmp_path):
    lines = [record("r%d" % n) for n in range(7)]
    result = split(tmp_path, write_input(tmp_path, lines), max_requests=3, record_format="bedrock", min_requests=1)
    assert [part["lines"] for part in result["parts"]] == [3, 3, 1]


def test_too_few_records_or_parts_cut_short_by_bytes_are_refused_before_anything_is_written(tmp_path):
    src = write_input(tmp_path, [record("r%d" % n) for n in range(5)])
    with pytest.raises(BatchInputError, match="holds 5 requests; a job takes at least 10 .min_requests."):
        split(tmp_path, src, max_requests=100, record_format="bedrock", min_requests=10)
    with pytest.raises(BatchInputError, match="Part 1 of .* would hold 2 requests, fewer than a job takes .min_requests 3., because max_bytes"):
        split(tmp_path, src, max_requests=100, max_bytes=len(record("r0")) * 2 + 2, record_format="bedrock", min_requests=3)
    assert files_in(tmp_path / "parts") == []


@pytest.mark.parametrize("bad_line, problem", [
    ('{"modelInput": {"inputText": "x"}}', "Line 2 of .* has no recordId"),
    ('{"recordId": "b"}', "Line 2 of .* has no modelInput object"),
    ('[1]', "Line 2 of .* is not a JSON object"),
    ('{"recordId": "a", "modelInput": {}}', "Line 2 of .* repeats the recordId 'a' of line 1"),
])
def test_a_bad_bedrock_record_is_named_and_nothing_is_written(tmp_path, bad_line, problem):
    src = write_input(tmp_path, [record("a"), bad_line, record("c")])
    with pytest.raises(BatchInputError, match=problem):
        split(tmp_path, src, max_requests=1, record_format="bedrock")
    assert files_in(tmp_path / "parts") == []


def test_sagemaker_lines_must_be_json_objects(tmp_path):
    src = write_input(tmp_path, ['{"content": "a"}', 'not json'])
    with pytest.raises(BatchInputError, match="Line 2 of .* is not a JSON record"):
        split(tmp_path, src, record_format="sagemaker")
    src = write_input(tmp_path, ['{"content": "a"}', '{"content": "b"}'], name="ok.jsonl")
    assert split(tmp_path, src, record_format="sagemaker", max_requests=0)["requests"] == 2
