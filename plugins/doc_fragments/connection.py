# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The connection options every module shares. Keep in step with
    # plugins/module_utils/core/module.py (CONNECTION_ARGUMENT_SPEC).
    DOCUMENTATION = r"""
options:
  url:
    description:
      - Base URL of the OpenSearch cluster, for example C(https://search.example.com:9200).
      - If not set, the value of the E(OPENSEARCH_URL) environment variable is used. The task fails, naming both,
        when neither is set.
      - Never put credentials in the URL; use O(username) and O(password).
    type: str
    required: true
  auth_type:
    description:
      - How to authenticate.
      - When omitted, V(basic) is used if O(username) is set, V(cert) if O(client_cert) is set, and V(none) otherwise.
        V(aws_sigv4) is never inferred.
      - V(aws_sigv4) signs every request for Amazon OpenSearch Service (O(aws_service=es)) or Serverless (O(aws_service=aoss)),
        and needs the Python library botocore.
      - If not set, the value of the E(OPENSEARCH_AUTH_TYPE) environment variable is used, unless it is empty.
    type: str
    choices: [none, basic, cert, aws_sigv4]
  username:
    description:
      - User name for HTTP basic authentication.
      - If not set, the value of the E(OPENSEARCH_USERNAME) environment variable is used.
    type: str
  password:
    description:
      - Password for HTTP basic authentication. Never logged or returned.
      - If not set, the value of the E(OPENSEARCH_PASSWORD) environment variable is used.
    type: str
  client_cert:
    description:
      - Path to a PEM client certificate for TLS client authentication.
      - If not set, the value of the E(OPENSEARCH_CLIENT_CERT) environment variable is used, unless it is empty.
    type: path
  client_key:
    description:
      - Path to the PEM private key of O(client_cert), unless that file holds the key too.
      - If not set, the value of the E(OPENSEARCH_CLIENT_KEY) environment variable is used, unless it is empty.
    type: path
  ca_path:
    description:
      - Path to a PEM bundle of CA certificates used to verify the server certificate, for clusters whose
        certificate is not signed by a public CA.
      - If not set, the value of the E(OPENSEARCH_CA_PATH) environment variable is used, unless it is empty.
    type: path
  validate_certs:
    description:
      - Whether to verify the server's TLS certificate. Turning it off is insecure and makes the module warn.
      - If not set, the value of the E(OPENSEARCH_VALIDATE_CERTS) environment variable is used.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for each HTTP answer.
    type: float
    default: 30
  retries:
    description:
      - How many times a request is retried, with exponential backoff, after a connection error or a
        429, 502, 503 or 504 answer.
      - Reads, updates, deletes and searches are retried. A request that creates something is retried only
        when it certainly did not reach the server; otherwise the module looks the object up first, so a retry
        never creates a duplicate.
      - Any request, a create included, that a cluster still starting refused before running it (a 503
        C(no_shard_available_action_exception), C(cluster_block_exception) or no cluster manager, or ML Commons'
        encryption master key not ready yet) is sent again until it runs, for up to the module's C(wait_timeout)
        where it has one, and at least 60 seconds, whatever O(retries) says. So a play can configure a cluster it
        created moments ago.
    type: int
    default: 3
  aws_region:
    description:
      - AWS region of the domain or collection, for O(auth_type=aws_sigv4).
      - If not set, the value of the E(AWS_REGION) or E(AWS_DEFAULT_REGION) environment variable is used. Without any,
        the module fails and says where to set it; it never assumes a region.
    type: str
  aws_service:
    description:
      - The AWS service to sign for, V(es) for Amazon OpenSearch Service or V(aoss) for OpenSearch Serverless.
    type: str
    choices: [es, aoss]
    default: es
  aws_profile:
    description:
      - Named AWS profile to take credentials from. Without it botocore's default credential chain is used, which reads
        E(AWS_ACCESS_KEY_ID), E(AWS_SECRET_ACCESS_KEY) and E(AWS_SESSION_TOKEN) from the environment, or
        E(AWS_SECURITY_TOKEN) where E(AWS_SESSION_TOKEN) is not set (as AWX's AWS credential injects it).
      - If not set, the value of the E(AWS_PROFILE) environment variable is used.
    type: str
requirements:
  - requests
  - botocore (only for O(auth_type=aws_sigv4))
notes:
  - All modules of this collection belong to the action group C(opensearch.ml_commons.ml_commons), so the connection
    can be set once with C(module_defaults).
"""
