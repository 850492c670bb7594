"""Turn the test bed's shell env file (.testbed/env) into ansible-test's integration_config.yml.

ansible-test passes that file's keys to every integration target as variables, lower-cased:
OPENSEARCH_URL becomes opensearch_url, and so on.
"""

import json
import os
import sys

from testbed import read_env_file


def main(env_path):
    values = dict((key.lower(), value) for key, value in read_env_file(env_path).items())
    # Targets start the test bed's helpers (the fault proxy) from here, on a port that two
    # checkouts testing side by side can set apart.
    values["testbed_dir"] = os.path.dirname(os.path.abspath(__file__))
    values["fault_proxy_port"] = int(os.environ.get("FAULT_PROXY_PORT", "9290"))
    # The SigV4-verifying proxy of the aws_sigv4 target; the fault proxy and reliability suite use the 3 ports above it.
    values["sigv4_proxy_port"] = int(os.environ.get("SIGV4_PROXY_PORT", values["fault_proxy_port"] + 5))
    # JSON is YAML, and quotes every value safely.
    print(json.dumps(values, indent=2, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".testbed/env")
