"""A stand-in for pip's get-pip.py, for ansible-test on machines that reach only PyPI.

ansible-test bootstraps pip into each of its virtual environments with a get-pip.py script it
downloads from its own CI host, which is unreachable here. This script does the same job from
what is reachable: Python's bundled pip (ensurepip), then the requested pip from PyPI.
ansible-test runs it with pip-install arguments, e.g. ``--disable-pip-version-check pip==24.2``,
and with PIP_CONFIG_FILE=/dev/null, so the machine's pip.conf (and its CA setting) is not read:
the bundled pip is given the system's CA bundle explicitly.
"""

import ensurepip
import os
import ssl
import subprocess
import sys

# get-pip.py's own switches, which pip install does not know.
GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")


def system_ca_bundle():
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


ensurepip.bootstrap(upgrade=True)
command = [sys.executable, "-m", "pip", "install"] + [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
if system_ca_bundle():
    command += ["--cert", system_ca_bundle()]
subprocess.check_call(command)
