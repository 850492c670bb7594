"""The execution-environment metadata, read by ansible-builder as AWX image builds read it."""

import os
import subprocess
import sys

import yaml

import ansible_collections.opensearch.ml_commons as collection

COLLECTION_ROOT = os.path.dirname(collection.__file__) if getattr(collection, "__file__", None) else list(collection.__path__)[0]
COLLECTIONS_PATH = os.path.dirname(os.path.dirname(os.path.dirname(COLLECTION_ROOT)))
BUILDER = os.path.join(os.path.dirname(sys.executable), "ansible-builder")


def test_introspection_finds_the_python_and_system_requirements():
    answer = subprocess.run([BUILDER, "introspect", "--sanitize", COLLECTIONS_PATH], capture_output=True, text=True, check=True)
    found = yaml.safe_load(answer.stdout.split("\n", 1)[1])
    assert "requests>=2.25  # from collection opensearch.ml_commons" in found["python"]
    assert "botocore>=1.31  # from collection opensearch.ml_commons" in found["python"]
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
