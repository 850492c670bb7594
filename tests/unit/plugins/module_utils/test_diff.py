"""Comparing only what the user set, after normalising the server's shapes."""

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.diff import as_server_string, build_diff, changed_fields, is_empty


def test_only_fields_the_user_set_are_compared():
    assert changed_fields({"description": None, "name": "g"}, {"name": "g", "description": "server side"}) == []


def test_a_differing_field_is_reported():
    assert changed_fields({"description": "new"}, {"description": "old"}) == ["description"]


def test_absent_and_empty_are_the_same():
    for empty in (None, "", [], {}):
        assert is_empty(empty)
        assert changed_fields({"headers": {}}, {"headers": empty}) == []
        assert changed_fields({"backend_roles": []}, {}) == []


def test_normalize_applies_to_both_sides():
    def normalize(name, value):
        return sorted(value or [])

    assert changed_fields({"backend_roles": ["b", "a"]}, {"backend_roles": ["a", "b"]}, normalize) == []
    assert changed_fields({"backend_roles": ["a"]}, {"backend_roles": ["a", "b"]}, normalize) == ["backend_roles"]


def test_parameters_are_compared_as_ml_commons_stores_them():
    assert as_server_string("text") == "text"
    assert as_server_string(100) == "100"
    assert as_server_string(True) == "true"
    assert as_server_string({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'


def test_diff_shape():
    assert build_diff(None, {"name": "g"}) == {"before": {}, "after": {"name": "g"}}
