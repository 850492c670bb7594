#!/usr/bin/env bash
# The ansible-core matrix (`make matrix`): for each CORE:PYTHON pair, a virtualenv of its own with
# that ansible-core on that Python (pyenv's), then ansible-test sanity and the unit tests on the
# collection copy that `make collection` made. With --integration, also the integration targets
# against the running test bed (.testbed/env). Prints one line per step and "N passed, N failed".
#
#   tests/tools/matrix.sh [--sanity] [--units] [--integration] CORE:PYTHON...
#   tests/tools/matrix.sh --module-units PYTHON CORE...   # the modules' unit tests on a managed host's Python
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
COLLECTION_DIR=${COLLECTION_DIR:?set by make}
COLLECTIONS=${COLLECTION_DIR%/ansible_collections/*}
MATRIX_VENVS=${MATRIX_VENVS:-$ROOT/.venv/matrix}
PYENV_ROOT=${PYENV_ROOT:-$HOME/.pyenv}
# The test tools of requirements-dev.txt, at the same pins, in every matrix virtualenv.
pinned() { sed -n "s/^\($1==[^ ]*\).*/\1/p" "$ROOT/requirements-dev.txt"; }

passed=0; failed=0; failures=()
setup() {  # setup NAME COMMAND...: a preparation step; only its failure is counted
    local name=$1; shift
    mkdir -p "$MATRIX_VENVS/logs"
    local log="$MATRIX_VENVS/logs/${name//[^A-Za-z0-9.]/_}.log"
    "$@" >"$log" 2>&1 && return 0
    failed=$((failed + 1)); failures+=("$name"); echo "FAIL  $name  (log: $log)"; tail -25 "$log" | sed 's/^/    /'; return 1
}
step() {  # step NAME COMMAND...: runs it, times it, counts it
    local name=$1; shift
    local start=$SECONDS log="$MATRIX_VENVS/logs/${name//[^A-Za-z0-9.]/_}.log"
    mkdir -p "$MATRIX_VENVS/logs"
    if "$@" >"$log" 2>&1; then
        passed=$((passed + 1)); echo "PASS  $name  ($((SECONDS - start)) s)"
    else
        failed=$((failed + 1)); failures+=("$name"); echo "FAIL  $name  ($((SECONDS - start)) s; log: $log)"; tail -25 "$log" | sed 's/^/    /'
    fi
}

python_of() {  # the pyenv interpreter for a version like 3.12
    local found
    found=$(ls -d "$PYENV_ROOT"/versions/"$1".* 2>/dev/null | sort -V | tail -1)
    [ -n "$found" ] || { echo "no Python $1 under $PYENV_ROOT/versions" >&2; return 1; }
    echo "$found/bin/python$1"
}

make_venv() {  # make_venv DIR PYTHON PIP-ARGS...
    local dir=$1 python=$2; shift 2
    local stamp="$dir/.installed-$(echo "$*" | md5sum | cut -c1-12)"
    [ -e "$stamp" ] && return 0
    rm -rf "$dir" && "$python" -m venv "$dir" && "$dir/bin/pip" install --quiet --upgrade pip \
        && "$dir/bin/pip" install --quiet "$@" && touch "$stamp"
}

get_pip() {  # ansible-test bootstraps its venvs with get-pip.py from a host off the registries; give it ours
    local venv=$1 version
    # The first pin is the one for the Pythons this ansible-core supports (older ones follow).
    version=$(sed -n "s/.*pip='\([0-9.]*\)'.*/\1/p" "$venv"/lib/python*/site-packages/ansible_test/_internal/python_requirements.py | head -1)
    [ -n "$version" ] || { echo "no pip pin in $venv's ansible-test" >&2; return 1; }
    mkdir -p ~/.ansible/test/cache
    cp "$ROOT/tests/tools/get_pip_offline.py" ~/.ansible/test/cache/"get_pip_${version//./_}.py"
}

sanity() { cd "$COLLECTION_DIR" && "$1/bin/ansible-test" sanity --python "$2" --requirements --color no; }
# The test bed's own tests (the OpenAI emulator's, with the openai SDK of requirements-dev.txt) do not
# depend on ansible-core: make units runs them once.
units() { cd "$COLLECTION_DIR" && PYTHONPATH="$COLLECTIONS" "$1/bin/python" -m pytest -q -p no:cacheprovider tests/unit --ignore=tests/unit/testbed; }
integration() {
    "$1/bin/python" "$ROOT/tests/testbed/integration_config.py" "$ROOT/.testbed/env" > "$COLLECTION_DIR/tests/integration/integration_config.yml" \
        && cd "$COLLECTION_DIR" && ANSIBLE_COLLECTIONS_PATH="$COLLECTIONS" PATH="$1/bin:$PATH" \
            "$1/bin/ansible-test" integration --python "$2" --color no
}
module_units() {  # the modules' side only: module_utils from that ansible-core, on the managed host's Python
    cd "$COLLECTION_DIR" && PYTHONPATH="$COLLECTIONS" "$1/bin/python" -m pytest -q -p no:cacheprovider tests/unit/plugins
}

if [ "${1:-}" = "--module-units" ]; then
    shift; py=$1; shift
    for core in "$@"; do
        venv="$MATRIX_VENVS/modules-$core-py$py"
        # ansible-core's controller refuses Pythons older than it supports, but the modules and
        # module_utils it ships run on older managed hosts: install it without that check.
        setup "venv modules $core py$py" make_venv "$venv" "$(python_of "$py")" "pytest<9" -r "$ROOT/requirements.txt" pyyaml cryptography \
            && setup "ansible-core $core on py$py" "$venv/bin/pip" install --quiet --no-deps --ignore-requires-python "ansible-core==$core" \
            && step "module units ansible-core $core on Python $py" module_units "$venv"
    done
else
    steps=()
    while [[ "${1:-}" == --* ]]; do steps+=("${1#--}"); shift; done
    [ ${#steps[@]} -gt 0 ] || steps=(sanity units)
    for pair in "$@"; do
        core=${pair%%:*}; py=${pair##*:}
        venv="$MATRIX_VENVS/$core-py$py"
        setup "venv ansible-core $core py$py" make_venv "$venv" "$(python_of "$py")" "ansible-core==$core" \
            $(pinned pytest) $(pinned requests) $(pinned botocore) "ansible-builder>=3.1,<4" || continue
        setup "get-pip for ansible-core $core" get_pip "$venv" || continue
        for s in "${steps[@]}"; do
            step "$s ansible-core $core on Python $py" "$s" "$venv" "$py"
        done
    done
fi
[ ${#failures[@]} -eq 0 ] || printf 'failed: %s\n' "${failures[@]}"
echo "matrix: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
