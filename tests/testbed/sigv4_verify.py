"""Checks AWS Signature Version 4 on a received request, as AWS checks it, with botocore's signer.

The test bed's Bedrock and SageMaker emulator and its SigV4 proxy in front of OpenSearch call
:meth:`SigV4Verifier.check` with the request as it came over the wire: the raw path (Bedrock's status
and stop URLs carry the job ARN with ``%2F``; the canonical request encodes that path once more, as
botocore and the AWS SDK for Java both do for every service but S3), the query, the headers the
signature names and the body. botocore recomputes the signature from those; a request whose
signature, key, scope, date or payload hash does not match is refused with AWS's code and message.
"""

import datetime
import hashlib
import hmac
import re

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
AUTHORIZATION_PATTERN = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]{64})$")
# AWS refuses a request signed more than 15 minutes before or after its own clock.
MAX_CLOCK_SKEW = datetime.timedelta(minutes=15)
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

MISSING_TOKEN = ("MissingAuthenticationTokenException", "Missing Authentication Token")
SIGNATURE_MISMATCH = (
    "InvalidSignatureException",
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key "
    "and signing method. Consult the service documentation for details.")
UNKNOWN_KEY = ("UnrecognizedClientException", "The security token included in the request is invalid.")


class SignatureRefused(Exception):
    """A request AWS would answer 403: ``code`` (the x-amzn-ErrorType) and ``message``."""

    status = 403

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class SigV4Verifier:
    """Verifies requests signed with one of ``keys`` (access key ID -> secret) for one of ``services``."""

    refusal = SignatureRefused  # what check() raises, for callers that import this module only when they verify

    def __init__(self, keys, services, clock):
        self.keys = dict(keys)
        self.services = tuple(services)
        self.clock = clock

    def check(self, method, raw_target, headers, body):
        """``raw_target``: the request line's path and query, undecoded; ``headers``: anything with .get()
        and .get_all() (http.server's message) or a dict; ``body``: the bytes received. Returns the
        access key ID, the region and the service of a valid signature; raises SignatureRefused."""
        authorization = header(headers, "Authorization")
        if not authorization:
            raise SignatureRefused(*MISSING_TOKEN)
        match = AUTHORIZATION_PATTERN.match(authorization.strip())
        if not match:
            raise SignatureRefused("IncompleteSignatureException",
                                   f"Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
                                   f"parameters of the {ALGORITHM} algorithm. Authorization={authorization.split(' ')[0]}")
        access_key, date, region, service, terminator = (match["credential"].split("/") + [""] * 5)[:5]
        if access_key not in self.keys:
            raise SignatureRefused(*UNKNOWN_KEY)
        if service not in self.services or terminator != "aws4_request":
            raise SignatureRefused("InvalidSignatureException",
                                   f"Credential should be scoped to correct service: '{' or '.join(self.services)}'.")
        timestamp = header(headers, "X-Amz-Date")
        self._check_time(timestamp, date)
        signed = match["signed"].split(";")
        if "host" not in signed:
            raise SignatureRefused("InvalidSignatureException", "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
        declared_hash = header(headers, "X-Amz-Content-SHA256")
        if declared_hash and declared_hash != UNSIGNED_PAYLOAD and declared_hash != hashlib.sha256(body).hexdigest():
            raise SignatureRefused("XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.")
        expected = self._signature(method, raw_target, headers, body, signed, access_key, region, service, timestamp)
        if not hmac.compare_digest(expected, match["signature"]):
            raise SignatureRefused(*SIGNATURE_MISMATCH)
        return access_key, region, service

    def _check_time(self, timestamp, scope_date):
        try:
            signed_at = datetime.datetime.strptime(timestamp or "", "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            raise SignatureRefused("IncompleteSignatureException",
                                   "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.") from None
        if scope_date != timestamp[:8]:
            raise SignatureRefused("InvalidSignatureException", "Date in Credential scope does not match YYYYMMDD from ISO-8601 version "
                                   f"of date from HTTP: '{scope_date}' != '{timestamp[:8]}'")
        now = datetime.datetime.fromtimestamp(self.clock(), datetime.timezone.utc)
        if abs(now - signed_at) > MAX_CLOCK_SKEW:
            earliest, latest = now - MAX_CLOCK_SKEW, now + MAX_CLOCK_SKEW
            raise SignatureRefused("InvalidSignatureException",
                                   f"Signature expired: {timestamp} is now earlier than {earliest:%Y%m%dT%H%M%SZ} "
                                   f"({now:%Y%m%dT%H%M%SZ} - 15 min.)" if signed_at < now else
                                   f"Signature not yet current: {timestamp} is still later than {latest:%Y%m%dT%H%M%SZ} "
                                   f"({now:%Y%m%dT%H%M%SZ} + 15 min.)")

    def _signature(self, method, raw_target, headers, body, signed, access_key, region, service, timestamp):
        values = {}
        for name in signed:
            received = header_values(headers, name)
            if not received:
                raise SignatureRefused(*SIGNATURE_MISMATCH)
            values[name] = received
        signer = SignedHeadersSigV4(Credentials(access_key, self.keys[access_key]), service, region, values)
        request = AWSRequest(method=method, url=f"http://{values['host'][0]}{raw_target}", data=body)
        request.context["timestamp"] = timestamp
        canonical = signer.canonical_request(request)
        return signer.signature(signer.string_to_sign(request, canonical), request)


class SignedHeadersSigV4(SigV4Auth):
    """botocore's SigV4 with the headers the request's signature names, as received, instead of all headers."""

    def __init__(self, credentials, service, region, signed_values):
        super().__init__(credentials, service, region)
        self.signed_values = signed_values

    def headers_to_sign(self, request):
        selected = HTTPHeaders()
        for name, values in self.signed_values.items():
            for value in values:
                selected.add_header(name, value)
        return selected

    def payload(self, request):
        return hashlib.sha256(request.body or b"").hexdigest()


def header(headers, name):
    value = headers.get(name)
    if value is None:
        lowered = {key.lower(): item for key, item in headers.items()} if hasattr(headers, "items") else {}
        value = lowered.get(name.lower())
    return value


def header_values(headers, name):
    if hasattr(headers, "get_all"):
        return headers.get_all(name) or []
    value = header(headers, name)
    return [] if value is None else [value]
