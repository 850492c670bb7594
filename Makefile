# Everything a fresh machine needs: `make demo` runs the main job on a local test bed,
# `make test` runs every test. Both install what they use (virtualenv, Python packages,
# OpenSearch artifacts from Maven Central, a JDK when none fits).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# ansible-test wants the collection at ansible_collections/<namespace>/<name>, outside any other git
# work tree (inside one it lists files with git and skips everything git ignores): a copy is built there.
COLLECTIONS := /tmp/ml-commons-collections-$(shell echo $(CURDIR) | md5sum | cut -c1-8)
COLLECTION_DIR := $(COLLECTIONS)/ansible_collections/opensearch/ml_commons
TEST_VERSIONS ?= 2.19.6 3.6.0
# The version whose integration tests run on a cluster of three nodes: 2.19's ML Commons cannot count batch tasks
# across nodes (docs/testbed.md, "A cluster"), 3.3 and later can.
CLUSTER_VERSION ?= 3.6.0
# `make test` runs each version and each shape once: the first of TEST_VERSIONS on one node, CLUSTER_VERSION on
# three. `make integration-all` runs every version of TEST_VERSIONS on one node.
# Targets whose subject does not change with OpenSearch's version or shape, run on the first test bed only:
# openai_file never reaches OpenSearch; examples checks the documentation, whose modules the other targets run on
# every bed; batch_inference_aws is the role's S3 and merge around the Bedrock and SageMaker jobs that aws_batch
# runs through ML Commons on every bed; aws_sigv4 is the client's signature, checked by a proxy.
FIRST_BED_TARGETS := openai_file examples batch_inference_aws aws_sigv4
export OPENSEARCH_VERSION ?= 2.19.6
# The tools of the virtualenv come first (ansible-lint warns when PATH lacks them).
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help venv get-pip collection sanity units lint changelog-lint up down status integration integration-all integration-cluster test demo bench bench-volume bench-batch bench-index gnu-time clean reliability reliability-quick reliability-cluster

help:
	@echo "make demo   - bring up a local OpenSearch + ML Commons and the OpenAI emulator, run the main job"
	@echo "make test   - sanity, unit tests, ansible-lint, release-check, docs, sanity and units on ansible-core $(MATRIX_OLDEST) and"
	@echo "              $(MATRIX_NEWEST), integration tests on OpenSearch $(firstword $(TEST_VERSIONS)) and on 3 nodes of $(CLUSTER_VERSION),"
	@echo "              reliability-quick, awx-runner"
	@echo "make integration-all - integration tests on one node of each of $(TEST_VERSIONS); make integration-cluster - on 3 nodes"
	@echo "make matrix - sanity and units on every ansible-core of MATRIX, module units on Python $(MODULE_PYTHON), integration on the oldest and newest"
	@echo "make docs   - the HTML docs site in build/docs/html; make release-check - the tarball through galaxy-importer"
	@echo "make bench  - the benchmark (docs/benchmark.md); make bench-volume / make bench-batch / make bench-index - only its volume / volume_batch / index phase"
	@echo "make up / make down / make status - the local test bed (OPENSEARCH_VERSION=$(OPENSEARCH_VERSION); OPENSEARCH_NODES=3 for a cluster)"

$(BIN)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed

# ansible-test downloads get-pip.py from a host outside the package registries; give it ours.
get-pip: venv
	pip_version=$$(sed -n "s/.*pip='\([0-9.]*\)'.*/\1/p" $(VENV)/lib/python3.11/site-packages/ansible_test/_internal/python_requirements.py); \
	mkdir -p ~/.ansible/test/cache; \
	cp tests/tools/get_pip_offline.py ~/.ansible/test/cache/get_pip_$${pip_version//./_}.py

collection:
	rm -rf $(COLLECTION_DIR)
	mkdir -p $(COLLECTION_DIR)
	tar --exclude=./.venv --exclude=./.ansible --exclude=./.pytest_cache --exclude=./.testbed --exclude=./build --exclude=./.git --exclude='*/__pycache__' \
	    --exclude=./tests/output -cf - . | tar -xf - -C $(COLLECTION_DIR)

sanity: venv collection get-pip
	cd $(COLLECTION_DIR) && $(CURDIR)/$(BIN)/ansible-test sanity --python 3.11 --requirements --color no

units: venv collection
	cd $(COLLECTION_DIR) && PYTHONPATH=$(COLLECTIONS) $(CURDIR)/$(BIN)/python -m pytest -q tests/unit

lint: venv
	$(BIN)/ansible-lint
	$(BIN)/antsibull-changelog lint

up: venv
	$(BIN)/python tests/testbed/testbed.py up

down:
	$(PYTHON) tests/testbed/testbed.py down

status:
	$(PYTHON) tests/testbed/testbed.py status

# Runs the integration targets against whatever `make up` started (.testbed/env).
integration: venv collection get-pip
	$(BIN)/python tests/testbed/integration_config.py .testbed/env > $(COLLECTION_DIR)/tests/integration/integration_config.yml
	cd $(COLLECTION_DIR) && ANSIBLE_COLLECTIONS_PATH=$(COLLECTIONS) \
	    $(CURDIR)/$(BIN)/ansible-test integration --python 3.11 --color no $(TARGETS)

# Brings up each version in turn and runs the integration targets on it; always stops the test bed.
integration-all: venv
	trap '$(MAKE) --no-print-directory down' EXIT; \
	targets="$(TARGETS)"; \
	for version in $(TEST_VERSIONS); do \
	  echo "=== integration tests on OpenSearch $$version ==="; \
	  OPENSEARCH_VERSION=$$version $(MAKE) --no-print-directory up; \
	  $(MAKE) --no-print-directory integration TARGETS="$$targets"; \
	  targets="$(TARGETS) $(addprefix --exclude ,$(FIRST_BED_TARGETS))"; \
	done

# The integration targets on a cluster of three nodes of CLUSTER_VERSION; always stops the test bed.
integration-cluster: venv
	trap '$(MAKE) --no-print-directory down' EXIT; \
	echo "=== integration tests on 3 nodes of OpenSearch $(CLUSTER_VERSION) ==="; \
	OPENSEARCH_NODES=3 OPENSEARCH_VERSION=$(CLUSTER_VERSION) $(MAKE) --no-print-directory up; \
	$(MAKE) --no-print-directory integration TARGETS="$(TARGETS) $(addprefix --exclude ,$(FIRST_BED_TARGETS))"

test: sanity units lint release-check docs matrix-quick
	trap '$(MAKE) --no-print-directory down' EXIT; \
	$(MAKE) --no-print-directory integration-all TEST_VERSIONS=$(firstword $(TEST_VERSIONS)); \
	$(MAKE) --no-print-directory integration-cluster; \
	$(MAKE) --no-print-directory reliability-quick; \
	$(MAKE) --no-print-directory awx-runner

# The reliability and security suite (tests/reliability): faults through a fault-injecting proxy,
# OpenSearch killed mid-role, concurrent runs, ML Commons' batch task limit (those four run the batch_inference
# role, batch jobs included), TLS, secrets in -vvvv output, bad input; on the test bed of `make up`. Prints one line
# per scenario, the losses/duplicates/leaks and "N passed, N failed". reliability-quick is its
# short form (3 to 6 minutes).
RELIABILITY_ARGS ?=
reliability: up collection
	ANSIBLE_COLLECTIONS_PATH=$(COLLECTIONS) $(BIN)/python tests/reliability/run.py $(RELIABILITY_ARGS)

reliability-quick: up collection
	ANSIBLE_COLLECTIONS_PATH=$(COLLECTIONS) $(BIN)/python tests/reliability/run.py --quick $(RELIABILITY_ARGS)

# The cluster scenarios (tests/reliability/cluster.py) on a test bed of three nodes, which it starts
# (replacing a running test bed of another shape): a node killed in the middle of the role, the role
# run again while it is down and after it came back.
reliability-cluster: venv collection
	OPENSEARCH_NODES=3 $(MAKE) --no-print-directory up
	ANSIBLE_COLLECTIONS_PATH=$(COLLECTIONS) $(BIN)/python tests/reliability/run.py --cluster $(RELIABILITY_ARGS)


# The main job on the local test bed: 200 embedding requests through the batch_inference playbook
# (upload, group, connector, model, batch job, wait, download), then the same run again, which
# must change nothing.
DEMO_DIR := $(CURDIR)/.testbed/demo
demo: up collection
	$(BIN)/python demo/make_input.py $(DEMO_DIR)/input.jsonl 200
	set -a; source .testbed/env; set +a; export DEMO_DIR=$(DEMO_DIR) ANSIBLE_COLLECTIONS_PATH=$(COLLECTIONS); \
	for run in first second; do \
	  echo "=== $$run run ==="; \
	  $(BIN)/ansible-playbook demo/demo.yml -e @demo/vars.yml | tee $(DEMO_DIR)/$$run.log; \
	done; \
	grep -q 'changed=0' $(DEMO_DIR)/second.log && echo "demo: the second run changed nothing"

# The benchmark against a hand-written ansible.builtin.uri playbook (README, "Benchmark"): brings the
# test bed up (and down again if it was not running), prints a markdown table, writes
# tests/output/bench/results.json. BENCH_SIZES="10 50 200" sets the scale sizes.
bench: venv collection gnu-time
	$(BIN)/python tests/bench/bench.py --collections $(COLLECTIONS)

# Only the bench's volume phase: a 190 MB batch input and an output of 1 GB or more moved by openai_file and by
# curl, and their re-runs (BENCH_VOLUME_LINES=2000 for a quick run).
bench-volume: venv collection gnu-time
	BENCH_PHASES=volume $(BIN)/python tests/bench/bench.py --collections $(COLLECTIONS)

# Only the bench's volume_batch phase: 200,000 embeddings requests through the batch_inference role, 4 jobs of
# 50,000 run by the emulator for 200 s each, then its re-run; about 5 minutes (BENCH_VOLUME_BATCH_LINES=1000000
# for 20 jobs; BENCH_VOLUME_BATCH_LINES=20000 BENCH_VOLUME_BATCH_REQUESTS_PER_JOB=5000 BENCH_VOLUME_BATCH_JOB_SECONDS=20
# for a quick run).
bench-batch: venv collection gnu-time
	BENCH_PHASES=volume_batch $(BIN)/python tests/bench/bench.py --collections $(COLLECTIONS)

# Only the bench's index phase: 100,000 documents exported by index_batch_input and by opensearch-py's helpers.scan,
# through the batch_inference role (2 jobs of 50,000, 60 s in progress each), written back by index_batch_output and by
# helpers.streaming_bulk / parallel_bulk, then the loop's re-run; about 10 minutes (BENCH_INDEX_DOCUMENTS=1000000 for
# the large run).
bench-index: venv collection gnu-time
	BENCH_PHASES=index $(BIN)/python tests/bench/bench.py --collections $(COLLECTIONS)

# The volume phase reads the module process's peak RSS from GNU time.
gnu-time:
	test -x /usr/bin/time || { apt-get update -qq && apt-get install -y -qq time; }

clean: down
	rm -rf $(VENV) $(COLLECTIONS) tests/output

# ---- Publishing (issue #16): release-check, changelog-release, docs, matrix, awx-runner --------
# Kept in one block so merges with other targets stay easy.

# The ansible-core matrix: each CORE:PYTHON pair gets a virtualenv of its own under .venv/matrix
# (pyenv's Pythons). From the oldest core meta/runtime.yml admits to the newest, each on a Python it
# supports as a controller.
MATRIX ?= 2.16.19:3.10 2.17.14:3.12 2.18.19:3.11 2.19.14:3.13 2.20.10:3.12 2.21.5:3.13
MATRIX_OLDEST := $(firstword $(MATRIX))
MATRIX_NEWEST := $(lastword $(MATRIX))
# The Python the README promises for the host that runs the modules, with the module_utils of the
# oldest and newest core.
MODULE_PYTHON ?= 3.9
MATRIX_RUN = COLLECTION_DIR=$(COLLECTION_DIR) tests/tools/matrix.sh
GALAXY_BUILD := $(CURDIR)/build/galaxy
GALAXY_IMPORTER_ENV := GALAXY_IMPORTER_RUN_ANSIBLE_LINT=true GALAXY_IMPORTER_RUN_ANSIBLE_TEST=false \
    GALAXY_IMPORTER_CHECK_REQUIRED_TAGS=true GALAXY_IMPORTER_RUN_FLAKE8=true GALAXY_IMPORTER_TMP_ROOT_DIR=$(GALAXY_BUILD)
# What must never be in the tarball: developer tooling and the scripts that provision the test bed.
TARBALL_FORBIDDEN := ^(tests/(bench|reliability|tools|output)/|tests/testbed/(testbed|integration_config|reset_ml)\.py$$|requirements-dev\.txt$$|\.ansible-lint$$|Makefile$$|demo/|\.ci/|\.venv|\.testbed/|build/)

.PHONY: release-check changelog-release docs matrix matrix-quick matrix-integration module-units awx-runner

# Builds the tarball as `ansible-galaxy collection build` does, checks it holds no developer
# tooling, imports it with galaxy-importer as Galaxy does (ansible-lint on; ansible-test off: it
# needs containers) and fails on any ERROR or WARNING line, then lints the docs with antsibull-docs.
release-check: venv collection
	rm -rf $(GALAXY_BUILD) && mkdir -p $(GALAXY_BUILD)
	$(BIN)/ansible-galaxy collection build --output-path $(GALAXY_BUILD) .
	tarball=$$(ls $(GALAXY_BUILD)/opensearch-ml_commons-*.tar.gz); \
	if tar -tzf $$tarball | grep -E '$(TARBALL_FORBIDDEN)'; then echo "release-check: developer tooling in $$tarball"; exit 1; fi; \
	echo "release-check: $$(tar -tzf $$tarball | grep -vc '/$$') files, $$(du -k $$tarball | cut -f1) KiB, no developer tooling"; \
	cd $(GALAXY_BUILD) && env $(GALAXY_IMPORTER_ENV) $(CURDIR)/$(BIN)/python -m galaxy_importer.main $$tarball > importer.log 2>&1 \
	    || { cat importer.log; echo "release-check: galaxy-importer failed"; exit 1; }; \
	if grep -E '^(ERROR|WARNING)' importer.log; then echo "release-check: galaxy-importer reported the lines above"; exit 1; fi; \
	tail -1 importer.log
	$(BIN)/antsibull-docs lint-collection-docs --plugin-docs $(COLLECTION_DIR)
	@echo "release-check: galaxy-importer and antsibull-docs lint clean"

# Releases the changelog as the version of galaxy.yml. Run again after merging branches that added
# fragments: --update-existing folds them into the same release (the fragments are then removed).
changelog-release: venv
	$(BIN)/antsibull-changelog release --version $$(sed -n 's/^version: *//p' galaxy.yml) --update-existing
	$(BIN)/antsibull-changelog lint

# The HTML docs site with antsibull-docs (every module, the role and its argument specs, the guides
# of docs/docsite/), built offline (no intersphinx download) with Sphinx warnings as errors, in build/docs/html.
docs: venv collection
	tests/tools/build_docs.sh $(COLLECTIONS) $(CURDIR)/build/docs

# Sanity and unit tests on every core of MATRIX, integration on the oldest and newest (against one
# test bed it brings up and down), and the modules' unit tests on Python $(MODULE_PYTHON).
matrix: venv collection
	$(MATRIX_RUN) --sanity --units $(MATRIX)
	$(MAKE) --no-print-directory module-units
	$(MAKE) --no-print-directory matrix-integration

# What `make test` runs of the matrix: sanity and units on the oldest and newest core.
matrix-quick: venv collection
	$(MATRIX_RUN) --sanity --units $(MATRIX_OLDEST) $(MATRIX_NEWEST)

module-units: venv collection
	$(MATRIX_RUN) --module-units $(MODULE_PYTHON) $(firstword $(subst :, ,$(MATRIX_OLDEST))) $(firstword $(subst :, ,$(MATRIX_NEWEST)))

matrix-integration: venv collection
	trap '$(MAKE) --no-print-directory down' EXIT; $(MAKE) --no-print-directory up; \
	$(MATRIX_RUN) --integration $(MATRIX_OLDEST) $(MATRIX_NEWEST)

# AWX's path: the batch_inference playbook through ansible-runner, with the environment that
# docs/awx-credential-type.yml's injectors produce, on the running test bed (.testbed/env).
awx-runner: up collection
	ANSIBLE_COLLECTIONS_PATH=$(COLLECTIONS) $(BIN)/python tests/tools/awx_runner_test.py --collections $(COLLECTIONS)
# ---- end of publishing block ----------------------------------------------------------------------
