#!/usr/bin/env bash
# `make docs`: the HTML docs site with antsibull-docs (every module, the role with its argument
# specs, the guides of docs/docsite/), offline and warning-free.
#   tests/tools/build_docs.sh COLLECTIONS_PATH DEST_DIR    -> DEST_DIR/html/index.html
set -euo pipefail
collections=$1 dest=$2
bin=$(cd "$(dirname "$0")/../../.venv/bin" && pwd)
rm -rf "$dest" && mkdir -p "$dest/site"
# antsibull-docs turns galaxy.yml's repository into a "Repository (Sources)" button on every page. While that field
# holds the reserved example address (see galaxy.yml), the site is built from a copy without it: no link to a place
# that does not exist.
docs_collection="$dest/collections/ansible_collections/opensearch/ml_commons"
mkdir -p "$docs_collection"
(cd "$collections/ansible_collections/opensearch/ml_commons" && tar --exclude=./tests/output -cf - .) | tar -xf - -C "$docs_collection"
sed -i '/^repository: https:\/\/example\.org\//d' "$docs_collection/galaxy.yml"
export PATH="$bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$dest/collections"
cd "$dest/site"
antsibull-docs sphinx-init --use-current --squash-hierarchy --fail-on-error --dest-dir . \
    --project opensearch.ml_commons --title "opensearch.ml_commons" --copyright "opensearch.ml_commons contributors" \
    opensearch.ml_commons > /dev/null
# Offline: Sphinx fetches no intersphinx inventory. The generated conf.py maps docs.python.org and
# docs.ansible.com; instead, the few ansible-core labels the plugin pages refer to come from a local
# inventory that points at the same pages of docs.ansible.com.
python - <<'PY'
import os
import re
import zlib

BASE = "https://docs.ansible.com/projects/ansible/devel/"
LABELS = {  # label: (page under BASE, title)
    "common_return_values": ("reference_appendices/common_return_values.html#common-return-values", "Return Values"),
    "action_plugins": ("plugins/action.html#action-plugins", "Action plugins"),
    "ansible_configuration_settings": ("reference_appendices/config.html#ansible-configuration-settings", "Ansible Configuration Settings"),
    "ansible_collections.ansible.builtin.get_url_module": ("collections/ansible/builtin/get_url_module.html#ansible-collections-ansible-builtin-get-url-module",
                                                           "ansible.builtin.get_url module"),
    "ansible_collections.ansible.builtin.copy_module": ("collections/ansible/builtin/copy_module.html#ansible-collections-ansible-builtin-copy-module",
                                                        "ansible.builtin.copy module"),
    "ansible_collections.ansible.builtin.file_module": ("collections/ansible/builtin/file_module.html#ansible-collections-ansible-builtin-file-module",
                                                        "ansible.builtin.file module"),
}
lines = "".join("%s std:label -1 %s %s\n" % (label, page, title) for label, (page, title) in sorted(LABELS.items()))
with open("ansible_devel.inv", "wb") as f:
    f.write(b"# Sphinx inventory version 2\n# Project: Ansible\n# Version: devel\n"
            b"# The remainder of this file is compressed using zlib.\n" + zlib.compress(lines.encode()))
with open("conf.py") as f:
    conf = f.read()
mapping = "intersphinx_mapping = {'ansible_devel': (%r, %r)}" % (BASE, os.path.abspath("ansible_devel.inv"))
conf, count = re.subn(r"(?ms)^intersphinx_mapping = \{.*?^\}", lambda _: mapping, conf)
assert count == 1, "conf.py has no intersphinx_mapping to replace"
with open("conf.py", "w") as f:
    f.write(conf)
PY
# build.sh runs antsibull-docs collection --fail-on-error, then sphinx-build -W (warnings are errors).
./build.sh
mv build/html "$dest/html"
if grep -rl 'href="https://example\.org' "$dest/html"; then echo "docs: the pages above link to the reserved example address"; exit 1; fi
echo "docs: $(find "$dest/html" -name '*.html' | wc -l) HTML pages in $dest/html (index.html)"
