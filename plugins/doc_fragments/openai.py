# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The options of modules that call OpenAI's API. Keep in step with
    # plugins/module_utils/core/module.py (OPENAI_ARGUMENT_SPEC).
    DOCUMENTATION = r"""
options:
  api_base_url:
    description:
      - Base URL of the OpenAI API, or of an OpenAI-compatible gateway, ending in C(/v1).
      - If not set, the value of the E(OPENAI_BASE_URL) environment variable is used, else C(https://api.openai.com/v1).
      - An empty value (as AWX injects an unset credential field) means C(https://api.openai.com/v1) too.
    type: str
    default: https://api.openai.com/v1
  api_key:
    description:
      - The API key, sent as a Bearer token. Never logged or returned.
      - If not set, the value of the E(OPENAI_API_KEY) environment variable is used.
    type: str
    required: true
  validate_certs:
    description:
      - Whether to verify the API's TLS certificate.
    type: bool
    default: true
  ca_path:
    description:
      - Path to a PEM bundle of CA certificates used to verify the API's certificate, for a gateway whose
        certificate is not signed by a public CA.
      - Without it, the system's CA bundle is used (or the one E(REQUESTS_CA_BUNDLE) names).
    type: path
  timeout:
    description:
      - Seconds to wait for each HTTP answer.
    type: float
    default: 60
  retries:
    description:
      - How many times a read or delete is retried, with exponential backoff, after a connection error or a
        429, 502, 503 or 504 answer. An upload is retried only when it certainly did not arrive; otherwise the
        module looks for the file first.
    type: int
    default: 3
requirements:
  - requests
notes:
  - This module belongs to the action group C(opensearch.ml_commons.openai), so C(api_key) and C(api_base_url) can be
    set once with C(module_defaults).
"""
