"""The execution-environment metadata, read by ansible-builder as AWX image builds read it, and the
sample execution environment definitions of docs/execution-environment/."""

import os
import subprocess
import sys

import pytest
import yaml

import ansible_collections.opensearch.ml_commons as collection

COLLECTION_ROOT = os.path.dirname(collection.__file__) if getattr(collection, "__file__", None) else list(collection.__path__)[0]
COLLECTIONS_PATH = os.path.dirname(os.path.dirname(os.path.dirname(COLLECTION_ROOT)))
BUILDER = os.path.join(os.path.dirname(sys.executable), "ansible-builder")
SAMPLES = os.path.join(COLLECTION_ROOT, "docs", "execution-environment")


def introspect(*extra):
    answer = subprocess.run([BUILDER, "introspect", "--sanitize", COLLECTIONS_PATH] + list(extra), capture_output=True, text=True, check=True)
    return yaml.safe_load(answer.stdout.split("\n", 1)[1])


def test_introspection_finds_requests_and_not_botocore():
    found = introspect()
    assert found["python"] == ["requests>=2.25  # from collection opensearch.ml_commons"]
    assert all(line.endswith("# from collection opensearch.ml_commons") for line in found["system"])


def test_create_builds_a_context_that_installs_the_collection(tmp_path):
    definition = {
        "version": 3,
        "images": {"base_image": {"name": "quay.io/ansible/awx-ee:latest"}},
        "dependencies": {"galaxy": {"collections": [{"name": "opensearch.ml_commons", "type": "dir", "source": COLLECTION_ROOT}]}},
    }
    (tmp_path / "execution-environment.yml").write_text(yaml.safe_dump(definition))
    subprocess.run([BUILDER, "create", "-f", str(tmp_path / "execution-environment.yml"), "-c", str(tmp_path / "context")],
                   capture_output=True, text=True, check=True)
    containerfile = (tmp_path / "context" / "Dockerfile").read_text()
    requirements = yaml.safe_load((tmp_path / "context" / "_build" / "requirements.yml").read_text())
    assert "ansible-galaxy collection install" in containerfile
    assert "introspect" in containerfile
    assert requirements["collections"][0]["name"] == "opensearch.ml_commons"


@pytest.mark.parametrize("sample, botocore", [("execution-environment.yml", False), ("execution-environment-sigv4.yml", True)])
def test_the_sample_definitions_install_the_collection_and_botocore_only_for_sigv4(tmp_path, sample, botocore):
    context = tmp_path / "context"
    subprocess.run([BUILDER, "create", "-f", os.path.join(SAMPLES, sample), "-c", str(context)], capture_output=True, text=True, check=True)
    containerfile = (context / "Dockerfile").read_text()
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert requirements["collections"] == [{"name": "opensearch.ml_commons"}]
    assert "ansible-galaxy collection install" in containerfile and "introspect" in containerfile
    user_python = context / "_build" / "requirements.txt"
    # What the image's pip installs: the collection's requirements merged with the definition's own,
    # as the build's introspect step merges them.
    merged = introspect("--user-pip", str(user_python)) if user_python.exists() else introspect()
    assert "requests>=2.25  # from collection opensearch.ml_commons" in merged["python"]
    assert any(line.startswith("botocore>=1.31") for line in merged["python"]) is botocore
