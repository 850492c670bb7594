#!/usr/bin/env python
"""Local emulator of the OpenAI Files, Batch, Embeddings and Chat Completions APIs.

The test bed runs a real OpenSearch with ML Commons; this server is the only emulated piece.
ML Commons calls it as if it were https://api.openai.com/v1 (batch_predict, status, cancel), and
the collection's modules and tests call it to upload batch input files and download results.
Standard library only, so it runs anywhere Python 3.11 runs.

Routes (all under ``<prefix>/v1``, Bearer auth, OpenAI's request/response shapes):
    POST /v1/files                 GET /v1/files           GET /v1/files/{id}
    GET  /v1/files/{id}/content    DELETE /v1/files/{id}
    POST /v1/batches               GET /v1/batches         GET /v1/batches/{id}
    POST /v1/batches/{id}/cancel
    POST /v1/embeddings            POST /v1/chat/completions
The default prefix is ``/openai`` because ML Commons recognises the provider by the substring
"openai" in the batch_predict URL; without it, Get Task and cancel fail for body-less actions.

Emulator-only admin routes (no auth, not part of OpenAI):
    GET  <prefix>/_emulator/stats  -> {"batches_created", "files_uploaded", "requests": {"POST /v1/batches": n, ...}}
    POST <prefix>/_emulator/reset  -> forget every file, batch and counter

Batch lifecycle: computed lazily from the clock whenever a batch is read, so no background thread.
    validating (--validating-seconds) -> input file checked -> failed (errors.data[]) or
    in_progress (--in-progress-seconds; request_counts grow with elapsed time) ->
    finalizing (--finalizing-seconds) -> completed (output/error JSONL files written).
    POST .../cancel moves validating/in_progress/finalizing to cancelling (--cancelling-seconds),
    then cancelled; requests that had not run go to the error file as batch_cancelled.

Per-batch knobs, set in the batch's metadata (string values):
    emulator_validating_seconds, emulator_in_progress_seconds, emulator_finalizing_seconds,
    emulator_cancelling_seconds  -- override the CLI timings for that batch only
    emulator_expire = "true"     -- the batch runs the first half of its requests, then expires;
                                    the rest appear in the error file as batch_expired

Request execution: embeddings return deterministic unit vectors seeded by sha256 of the input
(length --dimensions unless the request sets ``dimensions``); chat completions answer
"echo: <last user message>". Batch lines for other endpoints fail with a 400 line in the error file.

Usage:
    python tests/testbed/openai_emulator.py --host 127.0.0.1 --port 8089 --api-key KEY [--prefix /openai]
        [--validating-seconds 1] [--in-progress-seconds 2] [--finalizing-seconds 1] [--cancelling-seconds 1] [--dimensions 8]
"""

import argparse
import base64
import collections
import dataclasses
import email.parser
import email.policy
import functools
import hashlib
import json
import math
import os
import random
import re
import secrets
import string
import struct
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
BATCH_ENDPOINTS = (
    "/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/moderations",
    "/v1/images/generations", "/v1/images/edits", "/v1/videos",
)
COMPLETION_WINDOWS = ("24h",)
CANCELLABLE_STATUSES = ("validating", "in_progress", "finalizing")
CHAT_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
EMBEDDING_FIELDS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})
EMBEDDING_ENCODINGS = ("float", "base64")

MAX_BATCH_TASKS = 50_000
MAX_BATCH_FILE_BYTES = 200 * 1024 * 1024
MAX_EMBEDDING_INPUTS = 2048
MAX_EMBEDDING_DIMENSIONS = 3072  # text-embedding-3-large, the widest OpenAI embedding model
FILE_LIST_LIMITS = (1, 10_000)
BATCH_LIST_LIMITS = (1, 100)
DEFAULT_BATCH_LIST_LIMIT = 20
EXPIRY_SECONDS_RANGE = (3600, 2_592_000)
BATCH_FILE_LIFETIME_SECONDS = 30 * 24 * 3600
COMPLETION_WINDOW_SECONDS = 24 * 3600
METADATA_MAX_PAIRS, METADATA_MAX_KEY_LENGTH, METADATA_MAX_VALUE_LENGTH = 16, 64, 512
MAX_HEADER_LINE = 65_536

MISSING_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth "
    "(i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from https://platform.openai.com/account/api-keys."
)
INVALID_JSON_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. "
    "The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
)
SERVER_ERROR_MESSAGE = "The server had an error while processing your request. Sorry about that!"
ID_ALPHABET = string.ascii_letters + string.digits


# --------------------------------------------------------------------------- errors

class ApiError(Exception):
    """An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status, message, param=None, code=None, error_type="invalid_request_error", headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.error_type = error_type
        self.headers = headers or {}

    def body(self):
        return {"error": {"message": self.message, "type": self.error_type, "param": self.param, "code": self.code}}


def missing_parameter(name):
    return ApiError(400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")


def invalid_value(name, value, supported):
    choices = ", ".join(repr(choice) for choice in supported)
    return ApiError(400, f"Invalid value: {value!r}. Supported values are: {choices}.", param=name, code="invalid_value")


def invalid_type(name, expected, value):
    return ApiError(400, f"Invalid type for '{name}': expected {expected}, but got {type(value).__name__} instead.",
                    param=name, code="invalid_type")


def require_string(body, name):
    value = body.get(name)
    if value is None:
        raise missing_parameter(name)
    if not isinstance(value, str):
        raise invalid_type(name, "a string", value)
    return value


def is_integer(value):
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true/false are ints to Python


def mask_api_key(key):
    """Mask a presented key like OpenAI does: a few leading and trailing characters at most, never the whole key."""
    if len(key) < 12:
        return "*" * len(key)
    return key[:3] + "*" * (len(key) - 7) + key[-4:]


# --------------------------------------------------------------------------- ids

def random_alphanumeric(length):
    return "".join(secrets.choice(ID_ALPHABET) for _position in range(length))


def new_file_id():
    return "file-" + random_alphanumeric(24)


def new_batch_id():
    return "batch_" + secrets.token_hex(16)


# --------------------------------------------------------------------------- validation helpers

def validated_expiry_seconds(anchor, seconds, param):
    """Check an expires_after pair ({anchor: "created_at", seconds}); return the lifetime in seconds."""
    if anchor != "created_at":
        raise invalid_value(f"{param}.anchor", anchor, ("created_at",))
    try:
        lifetime = int(seconds)
    except (TypeError, ValueError):
        raise invalid_type(f"{param}.seconds", "an integer", seconds) from None
    low, high = EXPIRY_SECONDS_RANGE
    if not low <= lifetime <= high:
        raise ApiError(400, f"Invalid '{param}.seconds': must be between {low} and {high}, got {lifetime}.",
                       param=f"{param}.seconds", code="invalid_value")
    return lifetime


def validated_metadata(metadata):
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise invalid_type("metadata", "an object", metadata)
    if len(metadata) > METADATA_MAX_PAIRS:
        raise ApiError(400, f"Invalid 'metadata': too many properties. Expected an object with at most {METADATA_MAX_PAIRS} properties, "
                       f"but got an object with {len(metadata)} properties instead.", param="metadata", code="object_above_max_properties")
    for key, value in metadata.items():
        if len(key) > METADATA_MAX_KEY_LENGTH:
            raise ApiError(400, f"Invalid 'metadata': key {key!r} is longer than {METADATA_MAX_KEY_LENGTH} characters.",
                           param="metadata", code="invalid_value")
        if not isinstance(value, str):
            raise invalid_type(f"metadata.{key}", "a string", value)
        if len(value) > METADATA_MAX_VALUE_LENGTH:
            raise ApiError(400, f"Invalid 'metadata.{key}': string too long. Expected a string with maximum length {METADATA_MAX_VALUE_LENGTH}.",
                           param=f"metadata.{key}", code="string_above_max_length")
    return metadata


def query_limit(query, default, bounds):
    raw = query.get("limit")
    if raw is None:
        return default
    low, high = bounds
    try:
        limit = int(raw)
    except ValueError:
        limit = None
    if limit is None or not low <= limit <= high:
        raise ApiError(400, f"Invalid 'limit': expected an integer between {low} and {high}, got {raw!r}.", param="limit", code="invalid_value")
    return limit


def paginate(items, after, limit):
    """OpenAI cursor pagination: up to `limit` items that follow the item whose id is `after`."""
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise ApiError(400, f"Invalid 'after': no object with id {after!r}.", param="after", code="invalid_value")
        items = items[ids.index(after) + 1:]
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }


# --------------------------------------------------------------------------- timings

@dataclasses.dataclass(frozen=True)
class Timings:
    """Seconds a batch spends in each transient status (field names match the statuses)."""

    validating: float = 1.0
    in_progress: float = 2.0
    finalizing: float = 1.0
    cancelling: float = 1.0

    def overridden_by(self, metadata):
        """Apply emulator_<status>_seconds metadata so a test can make one batch take exactly T seconds."""
        overrides = {}
        for field in dataclasses.fields(self):
            key = f"emulator_{field.name}_seconds"
            if metadata and key in metadata:
                overrides[field.name] = parse_seconds(metadata[key], f"metadata.{key}")
        return dataclasses.replace(self, **overrides)


def parse_seconds(raw, param):
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise ApiError(400, f"Invalid '{param}': expected a non-negative number of seconds, got {raw!r}.", param=param, code="invalid_value")
    return seconds


# --------------------------------------------------------------------------- embeddings

def count_words(text):
    """Token estimate: whitespace-separated words (at least one, since a non-empty input always costs a token)."""
    return max(1, len(text.split()))


def is_token(value):
    return is_integer(value) and value >= 0


def invalid_embedding_input():
    return ApiError(400, "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.", param="input")


def embedding_item(item):
    """Return (seed text, token count) for one input: a non-empty string or a non-empty list of token ids."""
    if isinstance(item, str) and item:
        return item, count_words(item)
    if isinstance(item, list) and item and all(is_token(token) for token in item):
        return json.dumps(item), len(item)
    raise invalid_embedding_input()


def embedding_items(value):
    """Accept every input form of CreateEmbeddingRequest: string, [string], [token], [[token]]."""
    if value is None:
        raise missing_parameter("input")
    if isinstance(value, str) or (isinstance(value, list) and value and all(is_token(token) for token in value)):
        items = [value]
    elif isinstance(value, list) and value:
        items = value
    else:
        raise invalid_embedding_input()
    if len(items) > MAX_EMBEDDING_INPUTS:
        raise ApiError(400, f"Invalid 'input': array too long. Expected an array with maximum length {MAX_EMBEDDING_INPUTS}, "
                       f"but got an array with length {len(items)} instead.", param="input", code="array_above_max_length")
    return [embedding_item(item) for item in items]


def embedding_dimensions(body, default_dimensions):
    dimensions = body.get("dimensions", default_dimensions)
    if not is_integer(dimensions) or not 1 <= dimensions <= MAX_EMBEDDING_DIMENSIONS:
        raise ApiError(400, f"Invalid 'dimensions': expected an integer between 1 and {MAX_EMBEDDING_DIMENSIONS}, got {dimensions!r}.",
                       param="dimensions", code="invalid_value")
    return dimensions


def deterministic_vector(seed_text, dimensions):
    """Unit vector seeded by sha256(seed_text): the same input gives the same vector on every run and machine."""
    digest = hashlib.sha256(seed_text.encode("utf-8", "surrogatepass")).digest()
    generator = random.Random(int.from_bytes(digest, "big"))
    components = [generator.gauss(0.0, 1.0) for _dimension in range(dimensions)]  # Gaussian components: a uniformly random direction
    norm = math.sqrt(sum(component * component for component in components)) or 1.0
    return [component / norm for component in components]


def encode_vector(vector, encoding_format):
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def create_embedding(body, default_dimensions):
    """POST /v1/embeddings (CreateEmbeddingRequest is additionalProperties: false)."""
    unknown = sorted(set(body) - EMBEDDING_FIELDS)
    if unknown:
        raise ApiError(400, f"Unrecognized request argument supplied: {unknown[0]}")
    model = require_string(body, "model")
    items = embedding_items(body.get("input"))
    encoding_format = body.get("encoding_format", "float")
    if encoding_format not in EMBEDDING_ENCODINGS:
        raise invalid_value("encoding_format", encoding_format, EMBEDDING_ENCODINGS)
    dimensions = embedding_dimensions(body, default_dimensions)
    if "user" in body and not isinstance(body["user"], str):
        raise invalid_type("user", "a string", body["user"])
    data = [
        {"object": "embedding", "index": index, "embedding": encode_vector(deterministic_vector(seed, dimensions), encoding_format)}
        for index, (seed, _tokens) in enumerate(items)
    ]
    tokens = sum(item_tokens for _seed, item_tokens in items)
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


# --------------------------------------------------------------------------- chat completions

def message_text(message, index):
    """Text of one chat message; content may be a string, null, or a list of content parts."""
    if not isinstance(message, dict):
        raise invalid_type(f"messages[{index}]", "an object", message)
    if message.get("role") not in CHAT_ROLES:
        raise invalid_value(f"messages[{index}].role", message.get("role"), CHAT_ROLES)
    content = message.get("content")
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")
    raise invalid_type(f"messages[{index}].content", "a string or an array", content)


def create_chat_completion(body):
    """POST /v1/chat/completions: a deterministic answer echoing the last user message."""
    model = require_string(body, "model")
    messages = body.get("messages")
    if messages is None:
        raise missing_parameter("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
                       param="messages", code="empty_array")
    texts = [message_text(message, index) for index, message in enumerate(messages)]
    user_texts = [text for message, text in zip(messages, texts) if message["role"] == "user"]
    answer = "echo: " + (user_texts[-1] if user_texts else "")
    prompt_tokens = sum(count_words(text) for text in texts)
    completion_tokens = count_words(answer)
    return {
        "id": "chatcmpl-" + random_alphanumeric(29),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer, "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
    }


# --------------------------------------------------------------------------- batch input validation and execution

def batch_error(code, message, param=None, line=None):
    return {"code": code, "message": message, "param": param, "line": line}


class BatchInputValidator:
    """The checks OpenAI runs while a batch is `validating`; one instance per batch input file."""

    REQUIRED_KEYS = ("custom_id", "method", "url", "body")

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.seen_custom_ids = set()
        self.batch_model = None

    def validate(self, content):
        """Return (errors, tasks): BatchError dicts, or the parsed input lines when there are none."""
        numbered_lines = [(number, line) for number, line in enumerate(content.split(b"\n"), start=1) if line.strip()]
        if not numbered_lines:
            return [batch_error("empty_file", "The batch input file is empty.")], []
        if len(numbered_lines) > MAX_BATCH_TASKS:
            message = f"The batch input file has {len(numbered_lines)} requests; the maximum is {MAX_BATCH_TASKS}."
            return [batch_error("too_many_tasks", message)], []
        errors, tasks = [], []
        for number, line in numbered_lines:
            task, error = self._check_line(line, number)
            if error:
                errors.append(error)
            else:
                tasks.append(task)
        return errors, tasks

    def _check_line(self, line, number):
        try:
            task = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            task = None
        if not isinstance(task, dict):
            return None, batch_error("invalid_json_line", "This line is not parseable as valid JSON.", line=number)
        error = self._shape_error(task) or self._consistency_error(task)
        if error:
            code, message, param = error
            return None, batch_error(code, message, param, number)
        return task, None

    def _shape_error(self, task):
        for key in self.REQUIRED_KEYS:
            if key not in task:
                return "missing_required_parameter", f"Missing required parameter: '{key}'.", key
        if not isinstance(task["custom_id"], str):
            return "invalid_type", "The custom_id must be a string.", "custom_id"
        if task["method"] != "POST":
            return "invalid_value", f"Invalid value: {task['method']!r}. Supported values are: 'POST'.", "method"
        if not isinstance(task["body"], dict):
            return "invalid_type", "The body must be a JSON object.", "body"
        return None

    def _consistency_error(self, task):
        if task["url"] != self.endpoint:
            return "url_mismatch", f"The URL provided for this request ({task['url']!r}) does not match the batch endpoint ({self.endpoint!r}).", "url"
        if task["custom_id"] in self.seen_custom_ids:
            return ("duplicate_custom_id", "The custom_id for this request is a duplicate of another request. "
                    "The custom_id parameter must be unique for each request in a batch.", "custom_id")
        self.seen_custom_ids.add(task["custom_id"])
        model = task["body"].get("model")
        if self.batch_model is None:
            self.batch_model = model
        elif model != self.batch_model:
            return "model_mismatch", f"The model {model!r} differs from the model of the other requests in this batch ({self.batch_model!r}).", "body.model"
        return None


@dataclasses.dataclass
class TaskOutcome:
    """What running one batch input line produced: the endpoint's HTTP status and JSON body."""

    custom_id: str
    status_code: int
    body: dict

    @property
    def succeeded(self):
        return self.status_code == 200

    def output_line(self):
        """A BatchRequestOutput; request-level rejections keep error null and carry the 4xx in response."""
        response = {"status_code": self.status_code, "request_id": "req_" + secrets.token_hex(16), "body": self.body}
        return {"id": "batch_req_" + secrets.token_hex(16), "custom_id": self.custom_id, "response": response, "error": None}


def unrun_output_line(custom_id, code, message):
    """A BatchRequestOutput for a request the batch never ran (cancelled or expired first)."""
    return {"id": "batch_req_" + secrets.token_hex(16), "custom_id": custom_id, "response": None, "error": {"code": code, "message": message}}


UNRUN_REASONS = {
    "expired": ("batch_expired", "This request could not be executed before the completion window expired."),
    "cancelled": ("batch_cancelled", "This request was not executed because the batch was cancelled."),
}


def run_task(handler, endpoint, task):
    try:
        if handler is None:
            raise ApiError(400, f"The emulator does not execute {endpoint} requests.", code="unsupported_endpoint")
        return TaskOutcome(task["custom_id"], 200, handler(task["body"]))
    except ApiError as error:
        return TaskOutcome(task["custom_id"], error.status, error.body())


def batch_usage(outcomes):
    """The Batch object's usage block, summed over the requests that succeeded."""
    usages = [outcome.body.get("usage", {}) for outcome in outcomes]
    input_tokens = sum(usage.get("prompt_tokens", 0) for usage in usages)
    output_tokens = sum(usage.get("completion_tokens", 0) for usage in usages)
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def new_batch_object(endpoint, input_file_id, completion_window, metadata, created_at):
    """A Batch with every B.3 field present, explicit nulls included (clients and ML Commons read them)."""
    return {
        "id": new_batch_id(),
        "object": "batch",
        "endpoint": endpoint,
        "model": None,
        "errors": None,
        "input_file_id": input_file_id,
        "completion_window": completion_window,
        "status": "validating",
        "output_file_id": None,
        "error_file_id": None,
        "created_at": created_at,
        "in_progress_at": None,
        "expires_at": created_at + COMPLETION_WINDOW_SECONDS,
        "finalizing_at": None,
        "completed_at": None,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {"total": 0, "completed": 0, "failed": 0},
        "metadata": metadata,
        "usage": None,
    }


@dataclasses.dataclass
class BatchJob:
    """A Batch object plus the private bookkeeping its lazy lifecycle needs."""

    batch: dict
    timings: Timings
    input_content: bytes  # snapshot at creation, so deleting the input file later cannot break the batch
    expires: bool
    output_lifetime: int
    status_entered: float  # precise clock time of the current status; the *_at fields are whole seconds
    outcomes: list = dataclasses.field(default_factory=list)  # one TaskOutcome per input line, input order
    runnable: int = 0  # requests that run before the batch ends: all, or half of them when it will expire
    ran: int = 0  # requests run so far; frozen when the batch is cancelled

    def enter(self, status, at):
        self.batch["status"] = status
        self.batch[f"{status}_at"] = int(at)
        self.status_entered = at


# --------------------------------------------------------------------------- HTTP-independent request/response

@dataclasses.dataclass
class Request:
    method: str
    path: str
    query: dict
    headers: object  # anything with .get(name); http.server passes an email.message.Message
    body: bytes


@dataclasses.dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict = dataclasses.field(default_factory=dict)


def json_response(payload, status=200):
    return Response(status, json.dumps(payload).encode("utf-8"))


def error_response(error):
    response = json_response(error.body(), error.status)
    response.headers.update(error.headers)
    return response


def json_object_body(request):
    try:
        body = json.loads(request.body or b"")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, INVALID_JSON_MESSAGE) from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return body


@dataclasses.dataclass
class FormPart:
    filename: str
    data: bytes


def parse_multipart(content_type, body):
    """Parse multipart/form-data with the email package (the cgi module is deprecated); name -> FormPart."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(400, "Invalid Content-Type header, expected multipart/form-data.")
    envelope = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(envelope)
    if not message.is_multipart():
        raise ApiError(400, "Could not parse the multipart/form-data body.")
    return {
        part.get_param("name", header="content-disposition"): FormPart(part.get_filename(), part.get_payload(decode=True) or b"")
        for part in message.iter_parts()
    }


def form_text(form, name):
    part = form.get(name)
    return part.data.decode("utf-8", "replace") if part else None


def requested_file_lifetime(form):
    """The optional expires_after[anchor]/expires_after[seconds] fields of a file upload."""
    anchor, seconds = form_text(form, "expires_after[anchor]"), form_text(form, "expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    return validated_expiry_seconds(anchor, seconds, "expires_after")


def check_batch_upload(upload):
    if not upload.filename.lower().endswith(".jsonl"):
        raise ApiError(400, "Invalid file format for Batch API. Must be .jsonl", param="file")
    if len(upload.data) > MAX_BATCH_FILE_BYTES:
        raise ApiError(400, f"File is too large for the Batch API: {len(upload.data)} bytes, the maximum is {MAX_BATCH_FILE_BYTES}.", param="file")


# --------------------------------------------------------------------------- the emulator

ROUTES = (
    ("POST", "/v1/files", "create_file"),
    ("GET", "/v1/files", "list_files"),
    ("GET", "/v1/files/{id}", "retrieve_file"),
    ("DELETE", "/v1/files/{id}", "delete_file"),
    ("GET", "/v1/files/{id}/content", "download_file"),
    ("POST", "/v1/batches", "create_batch"),
    ("GET", "/v1/batches", "list_batches"),
    ("GET", "/v1/batches/{id}", "retrieve_batch"),
    ("POST", "/v1/batches/{id}/cancel", "cancel_batch"),
    ("POST", "/v1/embeddings", "embeddings"),
    ("POST", "/v1/chat/completions", "chat_completions"),
    ("GET", "/_emulator/stats", "stats"),
    ("POST", "/_emulator/reset", "reset"),
)


@dataclasses.dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler_name: str

    @functools.cached_property
    def pattern(self):
        return re.compile("^" + re.escape(self.template).replace(r"\{id\}", "([^/]+)") + "$")

    @property
    def is_api(self):
        return self.template.startswith("/v1/")


class OpenAIEmulator:
    """Routing, auth and all state; one lock serialises every request so the state stays consistent."""

    def __init__(self, api_key, prefix="/openai", timings=None, dimensions=8, clock=time.time):
        self.api_key = api_key
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.timings = timings or Timings()
        self.clock = clock
        self.routes = [Route(*route) for route in ROUTES]
        self.endpoint_handlers = {
            "/v1/embeddings": functools.partial(create_embedding, default_dimensions=dimensions),
            "/v1/chat/completions": create_chat_completion,
        }
        self.status_exits = {
            "validating": self._finish_validating,
            "in_progress": self._finish_in_progress,
            "finalizing": self._finish_finalizing,
            "cancelling": self._finish_cancelling,
        }
        self._lock = threading.Lock()
        self._clear_state()

    # ----- dispatch

    def handle(self, request):
        try:
            route, ids = self._match_route(request)
            with self._lock:
                if route.is_api:
                    self.request_counts[f"{route.method} {route.template}"] += 1
                    self._check_auth(request.headers)
                result = getattr(self, route.handler_name)(request, *ids)
                return result if isinstance(result, Response) else json_response(result)
        except ApiError as error:
            return error_response(error)

    def _match_route(self, request):
        path = request.path
        if not path.startswith(self.prefix + "/"):
            raise ApiError(404, f"Invalid URL ({request.method} {request.path})")
        relative = path[len(self.prefix):]
        matches = [(route, match.groups()) for route in self.routes if (match := route.pattern.match(relative))]
        for route, ids in matches:
            if route.method == request.method:
                return route, ids
        if matches:
            allowed = ", ".join(route.method for route, _ids in matches)
            raise ApiError(405, f"Method {request.method} is not allowed for {request.path}; allowed: {allowed}.", headers={"Allow": allowed})
        raise ApiError(404, f"Invalid URL ({request.method} {request.path})")

    def _check_auth(self, headers):
        scheme, _space, key = (headers.get("Authorization") or "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise ApiError(401, MISSING_KEY_MESSAGE)
        if not secrets.compare_digest(key.encode("utf-8"), self.api_key.encode("utf-8")):
            raise ApiError(401, f"Incorrect API key provided: {mask_api_key(key)}. You can find your API key at https://platform.openai.com/account/api-keys.",
                           code="invalid_api_key")

    # ----- admin routes

    def stats(self, _request):
        return {"batches_created": self.batches_created, "files_uploaded": self.files_uploaded, "requests": dict(self.request_counts)}

    def reset(self, _request):
        self._clear_state()
        return {"reset": True}

    def _clear_state(self):
        self.files = {}  # file id -> (File object, content bytes)
        self.batches = {}  # batch id -> BatchJob, in creation order
        self.batches_created = 0
        self.files_uploaded = 0
        self.request_counts = collections.Counter()  # "METHOD /v1/route/{id}" -> requests received, authenticated or not

    # ----- files

    def create_file(self, request):
        form = parse_multipart(request.headers.get("Content-Type", ""), request.body)
        upload = form.get("file")
        if upload is None or upload.filename is None:
            raise missing_parameter("file")
        purpose = form_text(form, "purpose")
        if purpose is None:
            raise missing_parameter("purpose")
        if purpose not in FILE_PURPOSES:
            raise invalid_value("purpose", purpose, FILE_PURPOSES)
        if purpose == "batch":
            check_batch_upload(upload)
        lifetime = requested_file_lifetime(form) or (BATCH_FILE_LIFETIME_SECONDS if purpose == "batch" else None)
        self.files_uploaded += 1
        return self._store_file(upload.filename, purpose, upload.data, lifetime, self.clock())

    def _store_file(self, filename, purpose, content, lifetime, at):
        created_at = int(at)
        file_object = {
            "id": new_file_id(),
            "object": "file",
            "bytes": len(content),
            "created_at": created_at,
            "expires_at": created_at + lifetime if lifetime else None,
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "status_details": None,
        }
        self.files[file_object["id"]] = (file_object, content)
        return file_object

    def _file(self, file_id):
        if file_id not in self.files:
            raise ApiError(404, f"No such File object: {file_id}")
        return self.files[file_id]

    def list_files(self, request):
        limit = query_limit(request.query, FILE_LIST_LIMITS[1], FILE_LIST_LIMITS)
        order = request.query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise invalid_value("order", order, ("asc", "desc"))
        purpose = request.query.get("purpose")
        files = [file_object for file_object, _content in self.files.values() if purpose in (None, file_object["purpose"])]
        if order == "desc":
            files.reverse()
        return paginate(files, request.query.get("after"), limit)

    def retrieve_file(self, _request, file_id):
        return self._file(file_id)[0]

    def download_file(self, _request, file_id):
        return Response(200, self._file(file_id)[1], content_type="application/octet-stream")

    def delete_file(self, _request, file_id):
        self._file(file_id)
        del self.files[file_id]
        return {"id": file_id, "object": "file", "deleted": True}

    # ----- batches: routes

    def create_batch(self, request):
        body = json_object_body(request)
        input_file_id = require_string(body, "input_file_id")
        endpoint = require_string(body, "endpoint")
        if endpoint not in BATCH_ENDPOINTS:
            raise invalid_value("endpoint", endpoint, BATCH_ENDPOINTS)
        completion_window = require_string(body, "completion_window")
        if completion_window not in COMPLETION_WINDOWS:
            raise invalid_value("completion_window", completion_window, COMPLETION_WINDOWS)
        metadata = validated_metadata(body.get("metadata"))
        output_lifetime = self._output_lifetime(body.get("output_expires_after"))
        timings = self.timings.overridden_by(metadata)
        input_file, content = self._batch_input_file(input_file_id)
        now = self.clock()
        batch = new_batch_object(endpoint, input_file["id"], completion_window, metadata, int(now))
        self.batches[batch["id"]] = BatchJob(
            batch=batch, timings=timings, input_content=content, output_lifetime=output_lifetime,
            expires=(metadata or {}).get("emulator_expire") == "true", status_entered=now,
        )
        self.batches_created += 1
        return batch

    def _output_lifetime(self, output_expires_after):
        if output_expires_after is None:
            return BATCH_FILE_LIFETIME_SECONDS
        if not isinstance(output_expires_after, dict):
            raise invalid_type("output_expires_after", "an object", output_expires_after)
        seconds = output_expires_after.get("seconds")
        if not is_integer(seconds):
            raise invalid_type("output_expires_after.seconds", "an integer", seconds)
        return validated_expiry_seconds(output_expires_after.get("anchor"), seconds, "output_expires_after")

    def _batch_input_file(self, file_id):
        if file_id not in self.files:
            raise ApiError(400, f"No such File object: {file_id}", param="input_file_id")
        file_object, content = self.files[file_id]
        if file_object["purpose"] != "batch":
            raise ApiError(400, f"File {file_id} has purpose {file_object['purpose']!r}; a batch input file must have purpose 'batch'.",
                           param="input_file_id")
        return file_object, content

    def _job(self, batch_id):
        if batch_id not in self.batches:
            raise ApiError(404, f"No such Batch: {batch_id}")
        job = self.batches[batch_id]
        self._advance(job)
        return job

    def retrieve_batch(self, _request, batch_id):
        return self._job(batch_id).batch

    def list_batches(self, request):
        limit = query_limit(request.query, DEFAULT_BATCH_LIST_LIMIT, BATCH_LIST_LIMITS)
        newest_first = [self._job(batch_id).batch for batch_id in reversed(self.batches)]
        return paginate(newest_first, request.query.get("after"), limit)

    def cancel_batch(self, _request, batch_id):
        job = self._job(batch_id)
        status = job.batch["status"]
        if status in CANCELLABLE_STATUSES:
            job.enter("cancelling", self.clock())  # job.ran stays at the progress _job() just computed
        elif status != "cancelling":
            raise ApiError(400, f"Cannot cancel a batch with status '{status}'.")
        return job.batch

    # ----- batches: lazy lifecycle

    def _advance(self, job):
        """Apply every status change that is due by now, then the in-progress request counts."""
        now = self.clock()
        while (finish := self.status_exits.get(job.batch["status"])) is not None:
            due = job.status_entered + getattr(job.timings, job.batch["status"])
            if now < due:
                break
            finish(job, due)  # at the due time, not now, so the *_at timestamps are what a real poller would have seen
        if job.batch["status"] == "in_progress":
            self._record_progress(job, now)

    def _finish_validating(self, job, at):
        endpoint = job.batch["endpoint"]
        errors, tasks = BatchInputValidator(endpoint).validate(job.input_content)
        if errors:
            job.batch["errors"] = {"object": "list", "data": errors}
            job.enter("failed", at)
            return
        handler = self.endpoint_handlers.get(endpoint)
        job.outcomes = [run_task(handler, endpoint, task) for task in tasks]
        job.runnable = len(tasks) // 2 if job.expires else len(tasks)
        job.batch["model"] = tasks[0]["body"].get("model")
        job.batch["request_counts"]["total"] = len(tasks)
        job.enter("in_progress", at)

    def _record_progress(self, job, now):
        """Requests complete in proportion to the time spent in_progress, so pollers see the counts grow."""
        duration = job.timings.in_progress
        fraction = 1.0 if duration <= 0 else min(1.0, (now - job.status_entered) / duration)
        self._record_ran(job, int(job.runnable * fraction))

    def _record_ran(self, job, count):
        job.ran = count
        ran = job.outcomes[:count]
        succeeded = sum(outcome.succeeded for outcome in ran)
        job.batch["request_counts"].update(completed=succeeded, failed=len(ran) - succeeded)

    def _finish_in_progress(self, job, at):
        self._record_ran(job, job.runnable)  # not via the time fraction, which float rounding can leave just below 1
        if job.expires:
            self._close(job, "expired", at)
        else:
            job.enter("finalizing", at)

    def _finish_finalizing(self, job, at):
        self._close(job, "completed", at)

    def _finish_cancelling(self, job, at):
        self._close(job, "cancelled", at)

    def _close(self, job, status, at):
        """Enter a terminal status that has results: write the output and error files, final counts and usage."""
        ran, unrun = job.outcomes[:job.ran], job.outcomes[job.ran:]
        successes = [outcome for outcome in ran if outcome.succeeded]
        error_lines = [outcome.output_line() for outcome in ran if not outcome.succeeded]
        if unrun:
            code, message = UNRUN_REASONS[status]
            error_lines += [unrun_output_line(outcome.custom_id, code, message) for outcome in unrun]
        batch_id = job.batch["id"]
        job.batch["output_file_id"] = self._store_result_file(f"{batch_id}_output.jsonl", [outcome.output_line() for outcome in successes], job, at)
        job.batch["error_file_id"] = self._store_result_file(f"{batch_id}_error.jsonl", error_lines, job, at)
        job.batch["request_counts"].update(completed=len(successes), failed=len(error_lines))
        job.batch["usage"] = batch_usage(successes)
        job.enter(status, at)

    def _store_result_file(self, filename, lines, job, at):
        if not lines:
            return None
        content = "".join(json.dumps(line) + "\n" for line in lines).encode("utf-8")
        return self._store_file(filename, "batch_output", content, job.output_lifetime, at)["id"]

    # ----- synchronous endpoints

    def embeddings(self, request):
        return self.endpoint_handlers["/v1/embeddings"](json_object_body(request))

    def chat_completions(self, request):
        return self.endpoint_handlers["/v1/chat/completions"](json_object_body(request))


# --------------------------------------------------------------------------- HTTP server

class EmulatorRequestHandler(BaseHTTPRequestHandler):
    """Translates HTTP to OpenAIEmulator.handle(); logs one line per request (request line and status, never headers)."""

    protocol_version = "HTTP/1.1"  # keep-alive: ML Commons' async HTTP client reuses connections
    server_version = "OpenAIEmulator/1.0"
    disable_nagle_algorithm = True  # headers and body are separate writes; Nagle + delayed ACK would add ~40 ms per response

    def do_GET(self):
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _serve(self):
        url = urlsplit(self.path)
        try:
            request = Request(self.command, url.path, dict(parse_qsl(url.query)), self.headers, self._read_body())
            response = self.server.emulator.handle(request)
        except ApiError as error:
            self.close_connection = True  # the body was not read cleanly, so the stream position is unknown
            response = error_response(error)
        except Exception:  # a bug must still produce an OpenAI-shaped 500 rather than a dropped connection
            traceback.print_exc()
            response = error_response(ApiError(500, SERVER_ERROR_MESSAGE, error_type="server_error"))
        self._send(response)

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked_body()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise ApiError(400, "Invalid Content-Length header.") from None
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked_body(self):
        chunks = []
        try:
            while size := int(self.rfile.readline(MAX_HEADER_LINE).split(b";")[0].strip(), 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline(MAX_HEADER_LINE)  # the CRLF that ends each chunk
        except ValueError:
            raise ApiError(400, "Invalid chunked request body.") from None
        while self.rfile.readline(MAX_HEADER_LINE).strip():  # optional trailer headers, up to the blank line
            pass
        return b"".join(chunks)

    def _send(self, response):
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)


class EmulatorServer(ThreadingHTTPServer):
    """ThreadingHTTPServer (daemon request threads) that carries the emulator its handlers call."""

    def __init__(self, address, emulator):
        super().__init__(address, EmulatorRequestHandler)
        self.emulator = emulator


def make_server(host, port, api_key, prefix="/openai", timings=None, dimensions=8, clock=time.time):
    """A bound, not yet serving, emulator server; call .serve_forever() (e.g. in a thread) and .shutdown().

    `clock` returns Unix seconds; tests pass a fake one to step through the batch lifecycle instantly.
    """
    return EmulatorServer((host, port), OpenAIEmulator(api_key, prefix, timings, dimensions, clock))


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Local emulator of the OpenAI Files, Batch, Embeddings and Chat Completions APIs.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089, help="0 picks a free port (the listening URL is printed to stderr)")
    parser.add_argument("--api-key", default=os.environ.get("OPENAI_EMULATOR_API_KEY"),
                        help="key clients must send as 'Authorization: Bearer KEY' (default: $OPENAI_EMULATOR_API_KEY, which keeps it out of ps)")
    parser.add_argument("--prefix", default="/openai", help="path prefix before /v1; keep 'openai' in it for ML Commons")
    parser.add_argument("--validating-seconds", type=float, default=Timings.validating)
    parser.add_argument("--in-progress-seconds", type=float, default=Timings.in_progress)
    parser.add_argument("--finalizing-seconds", type=float, default=Timings.finalizing)
    parser.add_argument("--cancelling-seconds", type=float, default=Timings.cancelling)
    parser.add_argument("--dimensions", type=int, default=8, help="embedding length when a request does not set 'dimensions'")
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error("--api-key (or $OPENAI_EMULATOR_API_KEY) is required")
    if not 1 <= args.dimensions <= MAX_EMBEDDING_DIMENSIONS:
        parser.error(f"--dimensions must be between 1 and {MAX_EMBEDDING_DIMENSIONS}")
    return args


def main(argv=None):
    args = parse_args(argv)
    timings = Timings(args.validating_seconds, args.in_progress_seconds, args.finalizing_seconds, args.cancelling_seconds)
    server = make_server(args.host, args.port, args.api_key, args.prefix, timings, args.dimensions)
    host, port = server.server_address[:2]
    print(f"OpenAI emulator listening on http://{host}:{port}{server.emulator.prefix}/v1", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
