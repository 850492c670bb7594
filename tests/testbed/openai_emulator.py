#!/usr/bin/env python
"""Local emulator of the OpenAI Files, Batch, Embeddings, Chat Completions, Responses and Completions APIs.

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
    POST /v1/responses             POST /v1/completions
The default prefix is ``/openai`` because ML Commons recognises the provider by the substring
"openai" in the batch_predict URL; without it, Get Task and cancel fail for body-less actions.
With --s3-endpoint-url, the same server also answers Bedrock's batch inference API under ``/bedrock`` and
SageMaker's batch transform under ``/sagemaker`` (aws_emulator.py: SigV4-signed, jobs in the test bed's S3);
their calls count in _emulator/stats beside OpenAI's, and a reset forgets their jobs too.

Emulator-only admin routes (no auth, not part of OpenAI):
    GET  <prefix>/_emulator/stats  -> {"batches_created", "files_uploaded", "file_bytes_uploaded", "file_downloads",
                                       "file_bytes_downloaded", "batch_busy_seconds",
                                       "batch_seconds_first_created_to_last_ended", "requests": {"POST /v1/batches": n, ...}}
        batches_created        batches POST /v1/batches created (refused requests not counted)
        files_uploaded         files POST /v1/files stored
        file_bytes_uploaded    content bytes of the files POST /v1/files stored
        file_downloads         GET /v1/files/{id}/content requests answered with the content
        file_bytes_downloaded  content bytes GET /v1/files/{id}/content sent
        batch_busy_seconds     emulator clock seconds during which at least one batch was between its creation and a
                               final status (completed, failed, expired, cancelled): the length of the union of the
                               batches' [created, ended] intervals, a batch not yet ended counted up to now
        batch_seconds_first_created_to_last_ended
                               from the first batch's creation to the last end (or now, if a batch has not ended);
                               0.0 without batches. Both in seconds, rounded to milliseconds
        requests               requests received per route, authenticated or not (Bedrock's routes as
                               "POST /model-invocation-job", SageMaker's by action, "CreateTransformJob")
        bedrock_jobs_created, sagemaker_jobs_created   jobs created (with --s3-endpoint-url only)
    POST <prefix>/_emulator/reset  -> forget every file, batch, counter, armed fault and set timing (and delete the files from disk)
    POST <prefix>/_emulator/faults -> arm faults for the next batches created; JSON object, every key optional, each
                                      given key replaces the armed value; answers the faults now armed:
        {"expire_next_batches": n}  the next n batches run the first half of their requests, then expire (as the
                                    emulator_expire metadata knob, for clients such as ML Commons that send no metadata)
        {"fail_next_batches": n, "fail_code": "token_limit_exceeded", "fail_message": null}
                                    the next n batches fail validation with errors.data [{code, message}]; fail_code
                                    defaults to token_limit_exceeded, and a null fail_message to OpenAI's message
                                    for that code (with the --enqueued-token-limit, or 0 without one).
                                    A batch a fail fault hits uses no expire fault.
    POST <prefix>/_emulator/timings -> the seconds of each status for the batches created from now on, as the
                                      --*-seconds flags set them at start (for a test bed already running):
                                      {"validating": s, "in_progress": s, "finalizing": s, "cancelling": s}, every key
                                      optional; answers the timings now in effect. A reset restores the start-up ones

Provider limits, as OpenAI has them:
    --max-batch-input-requests N (default 50,000): a batch input with more requests fails validation, too_many_tasks.
    --enqueued-token-limit N (default: no limit): OpenAI's batch queue limit, per model. When a batch leaves
        validating, it fails instead (status failed, errors.data [{"code": "token_limit_exceeded", "message":
        "Enqueued token limit reached for <model> in organization org-emulator. Limit: <N with commas> enqueued
        tokens. Please try again once some in_progress batches have been completed.", "param": null, "line": null}])
        if its input tokens plus those of the batches of the same model enqueued at that moment exceed N. A batch is
        enqueued from the moment it passed validation until it reaches a final status (in_progress, finalizing,
        cancelling). Input tokens are counted as the endpoint counts its usage's prompt_tokens (input_tokens for
        responses): words of each embeddings input string or completions prompt (token ids one each), words of each
        chat message or responses input item; a request the emulator cannot count so (another endpoint) counts the
        words of its JSON body.

Files at real size: contents live on disk in --data-dir (default: a new temporary directory, removed at exit),
never in memory. Uploads are parsed as they stream in (Content-Length or chunked) and downloads are sent from
disk, so memory stays flat whatever the size. Limits as OpenAI's: 512 MB per file, 200 MB for purpose batch
("File is too large."); content of purpose assistants or user_data cannot be
downloaded.

Batch lifecycle: each batch has a worker thread that validates the input file and runs its requests line by
line from disk, writing the output and error JSONL files as it goes. A status read only compares the clock
with how far the worker got, so it stays fast while a big batch runs.
    validating (--validating-seconds) -> input file checked -> failed (errors.data[]) or
    in_progress (--in-progress-seconds; request_counts grow with elapsed time) ->
    finalizing (--finalizing-seconds) -> completed (output/error JSONL files written).
    POST .../cancel moves validating/in_progress/finalizing to cancelling (--cancelling-seconds),
    then cancelled; requests that had not run go to the error file as batch_cancelled.
A status is left once its seconds have passed and the worker has done what the status stands for, at the
later of the two (so a batch bigger than its in_progress seconds allow stays in_progress until its last
request ran, and no status claims results before their files are complete). The worker runs ahead of the
clock; what a status read shows of its work is capped by the clock, so small batches keep exact timings.

Per-batch knobs, set in the batch's metadata (string values):
    emulator_validating_seconds, emulator_in_progress_seconds, emulator_finalizing_seconds,
    emulator_cancelling_seconds  -- override the CLI timings for that batch only
    emulator_expire = "true"     -- the batch runs the first half of its requests, then expires;
                                    the rest appear in the error file as batch_expired

Request execution: embeddings return deterministic unit vectors derived from SHAKE-256 of the input
(length --dimensions unless the request sets ``dimensions``), float32 components printed with 9 significant
digits as OpenAI prints them; chat completions and responses answer "echo: <last user message>" (a responses
`output` of one assistant message with one output_text), completions "echo: <prompt>" for each prompt. Batch
lines for other endpoints fail with a 400 line in the error file.

Usage:
    python tests/testbed/openai_emulator.py --host 127.0.0.1 --port 8089 --api-key KEY [--prefix /openai]
        [--validating-seconds 1] [--in-progress-seconds 2] [--finalizing-seconds 1] [--cancelling-seconds 1] [--dimensions 8]
        [--enqueued-token-limit N] [--max-batch-input-requests 50000] [--data-dir DIR]
"""

import argparse
import array
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
import re
import secrets
import shutil
import signal
import statistics
import string
import struct
import sys
import tempfile
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
TERMINAL_STATUSES = ("completed", "failed", "expired", "cancelled")
CHAT_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
RESPONSE_INPUT_ROLES = ("user", "assistant", "system", "developer")
EMBEDDING_FIELDS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})
EMBEDDING_ENCODINGS = ("float", "base64")

MAX_BATCH_TASKS = 50_000
MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_BATCH_FILE_BYTES = 200 * 1024 * 1024
MAX_FORM_FIELD_BYTES = 65_536  # text fields of an upload (purpose, expires_after[...]) are short
UNDOWNLOADABLE_PURPOSES = ("assistants", "user_data")
TRANSFER_CHUNK_BYTES = 1024 * 1024  # large pieces keep per-piece Python work negligible next to the copying
GAUSSIAN_LEVELS = 65_536  # one per 16-bit index, so two bytes of hash output pick a component
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
EMULATOR_ORGANIZATION = "org-emulator"

MISSING_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth "
    "(i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from https://platform.openai.com/account/api-keys."
)
INVALID_JSON_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. "
    "The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
)
SERVER_ERROR_MESSAGE = "The server had an error while processing your request. Sorry about that!"
FILE_TOO_LARGE_MESSAGE = "File is too large."
MALFORMED_FORM_MESSAGE = "Could not parse the multipart/form-data body."
ID_ALPHABET = string.ascii_letters + string.digits
FAULT_DEFAULTS = {"expire_next_batches": 0, "fail_next_batches": 0, "fail_code": "token_limit_exceeded", "fail_message": None}


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


def union_length(spans):
    """Total length covered by (start, end) intervals sorted by start, overlaps counted once."""
    total, covered_until = 0.0, -math.inf
    for start, end in spans:
        if end > covered_until:
            total += end - max(start, covered_until)
            covered_until = end
    return total


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


@functools.cache
def gaussian_quantiles():
    """Standard normal quantiles at GAUSSIAN_LEVELS evenly spaced probabilities: a lookup table of Gaussian values."""
    normal = statistics.NormalDist()
    return tuple(normal.inv_cdf((level + 0.5) / GAUSSIAN_LEVELS) for level in range(GAUSSIAN_LEVELS))


def deterministic_vector(seed_text, dimensions):
    """Unit vector derived from SHAKE-256 of seed_text: the same input gives the same vector on every run and machine.

    Gaussian components give a uniformly random direction; they come from a table lookup per two bytes of hash
    output because drawing them one by one in Python would dominate a batch of 50,000 x 1,536 components.
    Components are float32, printed with 9 significant digits (enough to give back the float32 exactly) like
    OpenAI's, so output files have OpenAI's size and the float and base64 encodings carry the same numbers.
    """
    digest = hashlib.shake_256(seed_text.encode("utf-8", "surrogatepass")).digest(2 * dimensions)
    quantiles = gaussian_quantiles()
    components = [quantiles[index] for index in struct.unpack(f"<{dimensions}H", digest)]
    scale = 1.0 / math.hypot(*components)
    float32 = struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *[component * scale for component in components]))
    return list(map(float, (",".join(["%.9g"] * dimensions) % float32).split(",")))


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
    prompt_tokens = chat_prompt_tokens(texts)
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


def chat_prompt_tokens(texts):
    return sum(count_words(text) for text in texts)


# --------------------------------------------------------------------------- responses

def response_input_items(value):
    """(role, text) of each input message of a CreateResponse: a string is one user message; a list holds
    messages whose content is a string or a list of text parts (other items, such as tool outputs, add no text)."""
    if value is None:
        raise missing_parameter("input")
    if isinstance(value, str):
        return [("user", value)]
    if not isinstance(value, list):
        raise invalid_type("input", "a string or an array", value)
    items = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise invalid_type(f"input[{index}]", "an object", item)
        if item.get("type", "message") != "message":
            continue
        if item.get("role") not in RESPONSE_INPUT_ROLES:
            raise invalid_value(f"input[{index}].role", item.get("role"), RESPONSE_INPUT_ROLES)
        content = item.get("content")
        if isinstance(content, str):
            text = content
        elif isinstance(content, list):
            text = " ".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") in ("input_text", "output_text"))
        else:
            raise invalid_type(f"input[{index}].content", "a string or an array", content)
        items.append((item["role"], text))
    return items


def create_response(body):
    """POST /v1/responses: a completed Response whose one assistant message echoes the last user message."""
    model = require_string(body, "model")
    items = response_input_items(body.get("input"))
    user_texts = [text for role, text in items if role == "user"]
    answer = "echo: " + (user_texts[-1] if user_texts else "")
    input_tokens = chat_prompt_tokens(text for _role, text in items)
    output_tokens = count_words(answer)
    created = int(time.time())
    return {
        "id": "resp_" + secrets.token_hex(24),
        "object": "response",
        "created_at": created,
        "completed_at": created,
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": [{
            "type": "message",
            "id": "msg_" + secrets.token_hex(24),
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": answer, "annotations": [], "logprobs": []}],
        }],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


# --------------------------------------------------------------------------- completions (legacy)

def invalid_prompt():
    return ApiError(400, "'$.prompt' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.", param="prompt")


def completion_prompts(value):
    """(echoed text, token count) of each prompt of a CreateCompletionRequest: string, [string], [token], [[token]]."""
    if value is None:
        raise missing_parameter("prompt")
    if isinstance(value, str) or (isinstance(value, list) and value and all(is_token(token) for token in value)):
        prompts = [value]
    elif isinstance(value, list) and value:
        prompts = value
    else:
        raise invalid_prompt()
    counted = []
    for prompt in prompts:
        if isinstance(prompt, str):
            counted.append((prompt, count_words(prompt)))
        elif isinstance(prompt, list) and prompt and all(is_token(token) for token in prompt):
            counted.append((json.dumps(prompt), len(prompt)))
        else:
            raise invalid_prompt()
    return counted


def create_completion(body):
    """POST /v1/completions: one choice per prompt, "echo: <prompt>" (token prompts echoed as their JSON)."""
    model = require_string(body, "model")
    prompts = completion_prompts(body.get("prompt"))
    answers = ["echo: " + text for text, _tokens in prompts]
    prompt_tokens = sum(tokens for _text, tokens in prompts)
    completion_tokens = sum(count_words(answer) for answer in answers)
    return {
        "id": "cmpl-" + random_alphanumeric(29),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"text": answer, "index": index, "logprobs": None, "finish_reason": "stop"} for index, answer in enumerate(answers)],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
    }


def request_input_tokens(endpoint, body):
    """Input tokens of one batch request, counted as the endpoint counts them when it runs the request; a request
    the emulator cannot count that way (another endpoint, an invalid body) counts the words of its JSON body."""
    try:
        if endpoint == "/v1/embeddings":
            return sum(tokens for _seed, tokens in embedding_items(body.get("input")))
        if endpoint == "/v1/chat/completions" and isinstance(body.get("messages"), list):
            return chat_prompt_tokens(message_text(message, index) for index, message in enumerate(body["messages"]))
        if endpoint == "/v1/responses" and "input" in body:
            return chat_prompt_tokens(text for _role, text in response_input_items(body["input"]))
        if endpoint == "/v1/completions" and "prompt" in body:
            return sum(tokens for _text, tokens in completion_prompts(body["prompt"]))
    except ApiError:
        pass
    return count_words(json.dumps(body))


def token_limit_message(model, limit):
    return (f"Enqueued token limit reached for {model} in organization {EMULATOR_ORGANIZATION}. Limit: {limit:,} enqueued tokens. "
            "Please try again once some in_progress batches have been completed.")


# --------------------------------------------------------------------------- batch input validation and execution

def batch_error(code, message, param=None, line=None):
    return {"code": code, "message": message, "param": param, "line": line}


class BatchInputValidator:
    """The checks OpenAI runs while a batch is `validating`; one instance per batch input file."""

    REQUIRED_KEYS = ("custom_id", "method", "url", "body")

    def __init__(self, endpoint, max_tasks=MAX_BATCH_TASKS):
        self.endpoint = endpoint
        self.max_tasks = max_tasks
        self.seen_custom_ids = set()
        self.custom_ids = []  # of the valid lines, in input order: the worker needs them for lines it never runs
        self.batch_model = None
        self.input_tokens = 0  # of the valid lines: what the batch adds to the enqueued tokens of its model

    def validate(self, lines):
        """Check the input line by line (an iterable of bytes, such as an open file); return BatchError dicts, none if valid."""
        errors, count = [], 0
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            count += 1
            if count <= self.max_tasks and (error := self._line_error(line, number)):
                errors.append(error)
        if count == 0:
            return [batch_error("empty_file", "The batch input file is empty.")]
        if count > self.max_tasks:
            return [batch_error("too_many_tasks", f"The batch input file has {count} requests; the maximum is {self.max_tasks}.")]
        return errors

    def _line_error(self, line, number):
        try:
            task = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            task = None
        if not isinstance(task, dict):
            return batch_error("invalid_json_line", "This line is not parseable as valid JSON.", line=number)
        error = self._shape_error(task) or self._consistency_error(task)
        if error:
            code, message, param = error
            return batch_error(code, message, param, number)
        self.custom_ids.append(task["custom_id"])
        self.input_tokens += request_input_tokens(self.endpoint, task["body"])
        return None

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


def usage_tokens(usage):
    """(input, output) tokens of an answer's usage: responses name them input/output_tokens, the others prompt/completion_tokens."""
    return (usage.get("input_tokens", usage.get("prompt_tokens", 0)), usage.get("output_tokens", usage.get("completion_tokens", 0)))


def batch_usage(input_tokens, output_tokens):
    """The Batch object's usage block, summed over the requests that succeeded."""
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
    """A Batch object, the files its worker reads and writes, and how far the worker got.

    The worker writes its progress and the lifecycle reads it, both under the emulator's lock. Result files
    are described by a plan, (requests that ran, reason for the rest or None): the worker runs ahead of the
    clock, so a cancel can want fewer requests than it ran; it then cuts the files back to that many.
    """

    batch: dict
    timings: Timings
    expires: bool
    output_lifetime: int
    status_entered: float  # precise clock time of the current status; the *_at fields are whole seconds
    created: float  # precise clock time of creation
    sequence: int  # how many batches were created before it
    input_path: str  # a hard link to the input file's content, so deleting that file later cannot break the batch
    output_path: str
    error_path: str
    # Written by the worker:
    validated_at: float = None
    validation_errors: list = dataclasses.field(default_factory=list)
    custom_ids: list = dataclasses.field(default_factory=list)  # of the input lines, in order (valid input only)
    model: str = None
    enqueued_tokens: int = 0  # input tokens of the valid lines, counted as the endpoint counts them
    injected_failure: tuple = None  # (code, message or None): a fault makes validation fail with this error
    executed: int = 0  # requests run so far, in input order
    succeeded: bytearray = dataclasses.field(default_factory=bytearray)  # per request run: 1 if it answered 200
    input_tokens: array.array = dataclasses.field(default_factory=lambda: array.array("Q"))  # per request run, 0 if it failed
    output_tokens: array.array = dataclasses.field(default_factory=lambda: array.array("Q"))
    output_ends: array.array = dataclasses.field(default_factory=lambda: array.array("Q"))  # output file size after each request
    error_ends: array.array = dataclasses.field(default_factory=lambda: array.array("Q"))  # error file size after each request
    written_plan: tuple = None  # what the result files hold
    result_sizes: tuple = (0, 0)  # output and error file sizes for written_plan
    results_ready_at: float = None
    worker: threading.Thread = None
    # Written by the lifecycle:
    ran: int = 0  # requests a status read has shown as run; frozen when the batch is cancelled
    cancel_plan: tuple = None
    abandoned: bool = False  # the emulator was reset or closed, or the queue was full: the worker stops and keeps no files
    enqueued_since: float = None  # precise clock time it passed validation: from then until it ends, its tokens are enqueued
    ended: float = None  # precise clock time it entered a terminal status

    @property
    def runnable(self):
        """Requests that run before the batch ends: all, or half of them when it will expire."""
        return len(self.custom_ids) // 2 if self.expires else len(self.custom_ids)

    def wanted_plan(self):
        """The result files the lifecycle needs next, or None when the batch will have none."""
        if self.cancel_plan is not None:
            return self.cancel_plan
        if self.validated_at is None or self.validation_errors:
            return None
        return self.runnable, "expired" if self.expires else None

    def enter(self, status, at):
        self.batch["status"] = status
        self.batch[f"{status}_at"] = int(at)
        self.status_entered = at
        if status == "in_progress":
            self.enqueued_since = at
        elif status in TERMINAL_STATUSES:
            self.ended = at

    def enqueued_at(self, moment):
        """Whether the batch's input tokens count against its model's enqueued-token limit at `moment`."""
        return self.enqueued_since is not None and self.enqueued_since <= moment and (self.ended is None or self.ended > moment)


@dataclasses.dataclass
class StoredFile:
    file_object: dict
    path: str


def remove_file(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


# --------------------------------------------------------------------------- HTTP-independent request/response

class ContentLengthBody:
    """A request body of known length; never reads past it, so the next request on the connection stays intact."""

    def __init__(self, stream, length):
        self.stream = stream
        self.remaining = length

    def read(self, size=-1):
        size = self.remaining if size < 0 else min(size, self.remaining)
        data = self.stream.read(size) if size else b""
        if len(data) < size:
            raise ApiError(400, "The request body ended before its Content-Length.")
        self.remaining -= size
        return data

    def drain(self):
        while self.read(TRANSFER_CHUNK_BYTES):
            pass


class ChunkedBody:
    """A request body in chunked transfer encoding, decoded as it is read."""

    def __init__(self, stream):
        self.stream = stream
        self.chunk_left = 0
        self.chunks_read = 0
        self.finished = False

    def read(self, size=-1):
        pieces, wanted = [], math.inf if size < 0 else size
        while wanted and not self.finished:
            if not self.chunk_left:
                self._start_chunk()
                continue
            piece = self.stream.read(min(self.chunk_left, wanted, TRANSFER_CHUNK_BYTES))
            if not piece:
                raise ApiError(400, "Invalid chunked request body.")
            pieces.append(piece)
            self.chunk_left -= len(piece)
            wanted -= len(piece)
        return b"".join(pieces)

    def _start_chunk(self):
        if self.chunks_read:
            self.stream.readline(MAX_HEADER_LINE)  # the CRLF that ends each chunk
        try:
            self.chunk_left = int(self.stream.readline(MAX_HEADER_LINE).split(b";")[0].strip(), 16)
        except ValueError:
            raise ApiError(400, "Invalid chunked request body.") from None
        self.chunks_read += 1
        if not self.chunk_left:
            while self.stream.readline(MAX_HEADER_LINE).strip():  # optional trailer headers, up to the blank line
                pass
            self.finished = True

    def drain(self):
        while self.read(TRANSFER_CHUNK_BYTES):
            pass


@dataclasses.dataclass
class Request:
    method: str
    path: str
    query: dict
    headers: object  # anything with .get(name); http.server passes an email.message.Message
    body: object  # ContentLengthBody or ChunkedBody: read(size) as the handler needs it
    raw_query: str = ""  # the query as sent, for SigV4 checks


@dataclasses.dataclass
class FileBody:
    """A response body sent from an open file; on_sent(byte count) is called once it has gone out."""

    file: object
    length: int
    on_sent: object

    def send(self, connection):
        try:
            connection.sendfile(self.file, 0, self.length)
        finally:
            self.on_sent(self.file.tell())  # sendfile leaves the position after the last byte sent, even on error
            self.file.close()


@dataclasses.dataclass
class Response:
    status: int
    body: object  # bytes or FileBody
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
        body = json.loads(request.body.read() or b"")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, INVALID_JSON_MESSAGE) from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return body


# --------------------------------------------------------------------------- streamed multipart/form-data

def multipart_boundary(content_type):
    header = email.parser.BytesHeaderParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n")
    boundary = header.get_boundary()
    if header.get_content_type() != "multipart/form-data" or not boundary:
        raise ApiError(400, "Invalid Content-Type header, expected multipart/form-data.")
    return boundary.encode("latin-1")


class MultipartReader:
    """Reads a multipart/form-data body part by part, passing each part's content on in pieces as it arrives.

    The email package would need the whole body in memory first; a 200 MB upload must not.
    """

    def __init__(self, body, boundary):
        self.body = body
        self.delimiter = b"\r\n--" + boundary
        self.buffer = b"\r\n"  # every delimiter but the first follows a CRLF; this one makes the first alike

    def next_part_headers(self):
        """Move to the next part and return its headers (an email Message), or None after the last part."""
        self._fill(2)
        if self.buffer.startswith(b"--"):
            return None  # the closing delimiter; the epilogue is left for the request's drain
        # The CRLF ending the delimiter line stays, so a part without headers is just an empty header block.
        header_block = bytearray()
        self.read_content(header_block.extend, until=b"\r\n\r\n", limit=MAX_HEADER_LINE)
        return email.parser.BytesHeaderParser(policy=email.policy.HTTP).parsebytes(bytes(header_block).lstrip() + b"\r\n\r\n")

    def skip_preamble(self):
        self.read_content(lambda _piece: None)

    def read_content(self, sink, until=None, limit=math.inf):
        """Pass everything up to the next `until` (default: the next delimiter) to sink in pieces; consume the marker."""
        marker = until or self.delimiter
        passed = 0
        while (index := self.buffer.find(marker)) < 0:
            keep = len(marker) - 1  # the start of a marker that the next read completes
            if len(self.buffer) > keep:
                passed += len(self.buffer) - keep
                if passed > limit:
                    raise ApiError(400, MALFORMED_FORM_MESSAGE)
                sink(memoryview(self.buffer)[:-keep])
                self.buffer = self.buffer[-keep:]
            self._read_more()
        if passed + index > limit:
            raise ApiError(400, MALFORMED_FORM_MESSAGE)
        sink(memoryview(self.buffer)[:index])
        self.buffer = self.buffer[index + len(marker):]

    def _fill(self, size):
        while len(self.buffer) < size:
            self._read_more()

    def _read_more(self):
        piece = self.body.read(TRANSFER_CHUNK_BYTES)
        if not piece:
            raise ApiError(400, MALFORMED_FORM_MESSAGE)
        self.buffer += piece


class UploadSink:
    """Writes an uploaded file part to disk as it arrives, refusing it as soon as it passes `limit` bytes."""

    def __init__(self, file, filename, limit):
        self.file = file
        self.filename = filename
        self.limit = limit
        self.size = 0

    def write(self, piece):
        self.size += len(piece)
        if self.size > self.limit:
            raise ApiError(400, FILE_TOO_LARGE_MESSAGE)
        self.file.write(piece)


def read_form(body, content_type, open_upload):
    """Parse a streamed multipart/form-data body: text fields into a dict (name -> bytes), the part named `file`
    into open_upload(filename, fields read so far), whose UploadSink is returned (None without such a part)."""
    reader = MultipartReader(body, multipart_boundary(content_type))
    reader.skip_preamble()
    fields, upload = {}, None
    while (headers := reader.next_part_headers()) is not None:
        name = headers.get_param("name", header="content-disposition")
        filename = headers.get_filename()
        if name == "file" and filename is not None and upload is None:
            upload = open_upload(filename, fields)
            reader.read_content(upload.write)
        elif filename is not None:
            reader.read_content(lambda _piece: None)  # a file under another name is not the upload: skipped
        else:
            value = bytearray()
            reader.read_content(value.extend, limit=MAX_FORM_FIELD_BYTES)
            fields[name] = bytes(value)
    return fields, upload


def form_text(fields, name):
    value = fields.get(name)
    return value.decode("utf-8", "replace") if value is not None else None


def requested_file_lifetime(fields):
    """The optional expires_after[anchor]/expires_after[seconds] fields of a file upload."""
    anchor, seconds = form_text(fields, "expires_after[anchor]"), form_text(fields, "expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    return validated_expiry_seconds(anchor, seconds, "expires_after")


def check_batch_upload(upload):
    if not upload.filename.lower().endswith(".jsonl"):
        raise ApiError(400, "Invalid file format for Batch API. Must be .jsonl", param="file")
    if upload.size > MAX_BATCH_FILE_BYTES:
        raise ApiError(400, FILE_TOO_LARGE_MESSAGE)


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
    ("POST", "/v1/responses", "responses"),
    ("POST", "/v1/completions", "completions"),
    ("GET", "/_emulator/stats", "stats"),
    ("POST", "/_emulator/reset", "reset"),
    ("POST", "/_emulator/faults", "faults"),
    ("POST", "/_emulator/timings", "set_timings"),
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


# Handlers that move file content or compute answers without shared state: they take the lock only around the
# state they touch, so one long upload, download or embeddings call does not hold up every other request.
UNLOCKED_HANDLERS = frozenset({"create_file", "download_file", "embeddings", "chat_completions", "responses", "completions"})


class OpenAIEmulator:
    """Routing, auth and all state; one lock keeps the state consistent, held only briefly by each request and worker."""

    def __init__(self, api_key, prefix="/openai", timings=None, dimensions=8, clock=time.time, data_dir=None,
                 enqueued_token_limit=None, max_batch_requests=MAX_BATCH_TASKS, aws=None):
        self.api_key = api_key
        self.aws = None
        if aws:
            # Bedrock and SageMaker (aws_emulator.py) need botocore: imported only when they are served.
            from aws_emulator import AwsEmulator
            self.aws = AwsEmulator(timings=lambda: self.timings, embed=functools.partial(deterministic_vector, dimensions=dimensions),
                                   clock=clock, **aws)
        self.enqueued_token_limit = enqueued_token_limit
        self.max_batch_requests = max_batch_requests
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.startup_timings = timings or Timings()
        self.timings = self.startup_timings
        self.clock = clock
        self.owns_data_dir = data_dir is None
        self.data_dir = tempfile.mkdtemp(prefix="openai-emulator-") if data_dir is None else os.fspath(data_dir)
        os.makedirs(self.data_dir, exist_ok=True)
        self.routes = [Route(*route) for route in ROUTES]
        self.endpoint_handlers = {
            "/v1/embeddings": functools.partial(create_embedding, default_dimensions=dimensions),
            "/v1/chat/completions": create_chat_completion,
            "/v1/responses": create_response,
            "/v1/completions": create_completion,
        }
        self.status_exits = {
            "validating": self._finish_validating,
            "in_progress": self._finish_in_progress,
            "finalizing": self._finish_finalizing,
            "cancelling": self._finish_cancelling,
        }
        self._lock = threading.Lock()
        self.files, self.batches = {}, {}
        self._clear_state()

    # ----- dispatch

    def handle(self, request):
        if self.aws and self.aws.handles(request.path):
            try:
                status, headers, payload = self.aws.handle(request.method, request.path, request.raw_query, request.headers,
                                                           request.body.read())
            except ApiError as error:
                return error_response(error)
            response = json_response(payload, status)
            response.headers.update(headers)
            response.content_type = "application/x-amz-json-1.1" if request.path.startswith("/sagemaker") else "application/json"
            return response
        try:
            route, ids = self._match_route(request)
            if route.is_api:
                with self._lock:
                    self.request_counts[f"{route.method} {route.template}"] += 1
                self._check_auth(request.headers)
            handler = getattr(self, route.handler_name)
            if route.handler_name in UNLOCKED_HANDLERS:
                result = handler(request, *ids)
            else:
                with self._lock:
                    result = handler(request, *ids)
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

    # ----- admin routes and lifetime

    def stats(self, _request):
        now = self.clock()
        for job in self.batches.values():
            self._advance(job)
        spans = sorted((job.created, now if job.ended is None else job.ended) for job in self.batches.values())
        answer = {"batches_created": self.batches_created, "files_uploaded": self.files_uploaded,
                  "file_bytes_uploaded": self.file_bytes_uploaded, "file_downloads": self.file_downloads,
                  "file_bytes_downloaded": self.file_bytes_downloaded,
                  "batch_busy_seconds": round(union_length(spans), 3),
                  "batch_seconds_first_created_to_last_ended": round(max(end for _start, end in spans) - spans[0][0], 3) if spans else 0.0,
                  "requests": dict(self.request_counts)}
        if self.aws:
            jobs, requests = self.aws.stats()
            answer.update(jobs)
            answer["requests"].update(requests)
        return answer

    def reset(self, _request):
        self._clear_state()
        if self.aws:
            self.aws.reset()
        return {"reset": True}

    def faults(self, request):
        """Arm faults for the next batches created: {"expire_next_batches": n, "fail_next_batches": n,
        "fail_code": code, "fail_message": message}; every key is optional; answers the faults now armed."""
        body = json_object_body(request)
        unknown = sorted(set(body) - set(FAULT_DEFAULTS))
        if unknown:
            raise ApiError(400, f"Unknown fault: {unknown[0]!r}; known: {', '.join(FAULT_DEFAULTS)}.", param=unknown[0])
        for name in ("expire_next_batches", "fail_next_batches"):
            if name in body and not (is_integer(body[name]) and body[name] >= 0):
                raise invalid_type(name, "a non-negative integer", body[name])
        for name in ("fail_code", "fail_message"):
            if name in body and not isinstance(body[name], (str, type(None))):
                raise invalid_type(name, "a string or null", body[name])
        self.armed_faults.update(body)
        return dict(self.armed_faults)

    def set_timings(self, request):
        """Set the seconds of each status for the batches created from now on, as the --*-seconds flags do at start:
        {"validating": s, "in_progress": s, "finalizing": s, "cancelling": s}, every key optional; answers the
        timings now in effect. A reset restores the start-up timings."""
        body = json_object_body(request)
        known = [field.name for field in dataclasses.fields(Timings)]
        unknown = sorted(set(body) - set(known))
        if unknown:
            raise ApiError(400, f"Unknown timing: {unknown[0]!r}; known: {', '.join(known)}.", param=unknown[0])
        seconds = {name: parse_seconds(str(value), name) for name, value in body.items()}
        self.timings = dataclasses.replace(self.timings, **seconds)
        return dataclasses.asdict(self.timings)

    def _clear_state(self):
        """Forget every file and batch, deleting their files from disk; batch workers stop and keep nothing."""
        for job in self.batches.values():
            job.abandoned = True
            for path in (job.input_path, job.output_path, job.error_path):
                remove_file(path)
        for stored in self.files.values():
            remove_file(stored.path)
        self.files = {}  # file id -> StoredFile
        self.batches = {}  # batch id -> BatchJob, in creation order
        self.batches_created = 0
        self.files_uploaded = 0
        self.file_bytes_uploaded = 0
        self.file_downloads = 0
        self.file_bytes_downloaded = 0
        self.armed_faults = dict(FAULT_DEFAULTS)
        self.timings = self.startup_timings
        self.request_counts = collections.Counter()  # "METHOD /v1/route/{id}" -> requests received, authenticated or not

    def close(self):
        """Delete every stored file, and the data directory if the emulator made it."""
        with self._lock:
            self._clear_state()
        if self.owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)  # a stopping worker may still leave a file behind

    def wait_for_workers(self):
        """Block until no batch worker runs. Tests with a fake clock call this before moving the clock, so that
        what a status read shows depends on the clock alone, as it does for small batches on the real clock."""
        while True:
            with self._lock:
                workers = [job.worker for job in self.batches.values() if job.worker is not None]
            if not workers:
                return
            for worker in workers:
                worker.join()

    # ----- files

    def create_file(self, request):
        with tempfile.NamedTemporaryFile(dir=self.data_dir, prefix="upload-", delete=False) as content:
            try:
                return self._store_upload(request, content)
            except BaseException:
                remove_file(content.name)
                raise

    def _store_upload(self, request, content):
        def open_upload(filename, fields_before):
            # With purpose batch already read, the 200 MB limit stops the upload early; otherwise it is checked at the end.
            limit = MAX_BATCH_FILE_BYTES if form_text(fields_before, "purpose") == "batch" else MAX_FILE_BYTES
            return UploadSink(content, filename, limit)

        fields, upload = read_form(request.body, request.headers.get("Content-Type", ""), open_upload)
        if upload is None:
            raise missing_parameter("file")
        purpose = form_text(fields, "purpose")
        if purpose is None:
            raise missing_parameter("purpose")
        if purpose not in FILE_PURPOSES:
            raise invalid_value("purpose", purpose, FILE_PURPOSES)
        if purpose == "batch":
            check_batch_upload(upload)
        lifetime = requested_file_lifetime(fields) or (BATCH_FILE_LIFETIME_SECONDS if purpose == "batch" else None)
        content.close()  # flushed before anyone can download it
        with self._lock:
            self.files_uploaded += 1
            self.file_bytes_uploaded += upload.size
            return self._store_file(upload.filename, purpose, content.name, upload.size, lifetime, self.clock())

    def _store_file(self, filename, purpose, path, size, lifetime, at):
        created_at = int(at)
        file_object = {
            "id": new_file_id(),
            "object": "file",
            "bytes": size,
            "created_at": created_at,
            "expires_at": created_at + lifetime if lifetime else None,
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "status_details": None,
        }
        self.files[file_object["id"]] = StoredFile(file_object, path)
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
        files = [stored.file_object for stored in self.files.values() if purpose in (None, stored.file_object["purpose"])]
        if order == "desc":
            files.reverse()
        return paginate(files, request.query.get("after"), limit)

    def retrieve_file(self, _request, file_id):
        return self._file(file_id).file_object

    def download_file(self, _request, file_id):
        with self._lock:
            stored = self._file(file_id)
            purpose = stored.file_object["purpose"]
            if purpose in UNDOWNLOADABLE_PURPOSES:
                raise ApiError(400, f"Not allowed to download files of purpose: {purpose}")
            # Opened under the lock, so a concurrent delete cannot pull the file away before the download starts.
            content = open(stored.path, "rb")  # pylint: disable=consider-using-with  # closed by FileBody.send
            self.file_downloads += 1
        return Response(200, FileBody(content, stored.file_object["bytes"], self._count_download), content_type="application/octet-stream")

    def _count_download(self, sent):
        with self._lock:
            self.file_bytes_downloaded += sent

    def delete_file(self, _request, file_id):
        remove_file(self._file(file_id).path)
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
        input_file = self._batch_input_file(input_file_id)
        now = self.clock()
        batch = new_batch_object(endpoint, input_file_id, completion_window, metadata, int(now))
        work_path = os.path.join(self.data_dir, batch["id"])
        fails = self._take_fault("fail_next_batches")
        injected_failure = (self.armed_faults["fail_code"], self.armed_faults["fail_message"]) if fails else None
        expires = (not fails and self._take_fault("expire_next_batches")) or (metadata or {}).get("emulator_expire") == "true"
        job = BatchJob(
            batch=batch, timings=timings, expires=expires, output_lifetime=output_lifetime, status_entered=now, created=now,
            sequence=self.batches_created, input_path=work_path + "_input.jsonl", output_path=work_path + "_output.jsonl",
            error_path=work_path + "_error.jsonl", injected_failure=injected_failure,
        )
        os.link(input_file.path, job.input_path)
        self.batches[batch["id"]] = job
        self.batches_created += 1
        self._start_worker(job, self._work_on_batch)
        return batch

    def _take_fault(self, name):
        """Use up one armed fault of this kind (a count of batches); False if none is armed."""
        if not self.armed_faults[name]:
            return False
        self.armed_faults[name] -= 1
        return True

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
        stored = self.files[file_id]
        purpose = stored.file_object["purpose"]
        if purpose != "batch":
            raise ApiError(400, f"File {file_id} has purpose {purpose!r}; a batch input file must have purpose 'batch'.", param="input_file_id")
        return stored

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
            # Requests a status read has shown as run stay run (job.ran, just computed by _job); a batch cancelled
            # while validating never ran any, and has no result files.
            job.cancel_plan = (0, None) if status == "validating" else (job.ran, "cancelled")
            job.enter("cancelling", self.clock())
            if job.worker is None:
                self._start_worker(job, self._settle_results)
        elif status != "cancelling":
            raise ApiError(400, f"Cannot cancel a batch with status '{status}'.")
        return job.batch

    # ----- batches: lifecycle, from the clock and the worker's progress

    def _advance(self, job):
        """Apply every status change that is due by now and whose work is done, then the in-progress request counts."""
        now = self.clock()
        while (finish := self.status_exits.get(job.batch["status"])) is not None:
            due = job.status_entered + getattr(job.timings, job.batch["status"])
            done_at = job.validated_at if job.batch["status"] == "validating" else self._results_ready_at(job)
            if now < due or done_at is None:
                break
            # At the due time (or when the work got done, if later), not now: the *_at timestamps are what a real poller would have seen.
            finish(job, max(due, done_at))
        if job.batch["status"] == "in_progress":
            self._record_progress(job, now)

    @staticmethod
    def _results_ready_at(job):
        return job.results_ready_at if job.written_plan is not None and job.written_plan == job.wanted_plan() else None

    def _finish_validating(self, job, at):
        if not job.validation_errors and self._queue_full_for(job, at):
            job.validation_errors = [batch_error("token_limit_exceeded", token_limit_message(job.model, self.enqueued_token_limit))]
            job.abandoned = True  # the worker ran ahead of the clock: it stops, and the results it wrote go
            if job.worker is None:
                remove_file(job.output_path)
                remove_file(job.error_path)
        if job.validation_errors:
            job.batch["errors"] = {"object": "list", "data": job.validation_errors}
            job.enter("failed", at)
            return
        job.batch["model"] = job.model
        job.batch["request_counts"]["total"] = len(job.custom_ids)
        job.enter("in_progress", at)

    def _queue_full_for(self, job, at):
        """OpenAI's batch queue limit: a batch fails validation if its input tokens and those of the batches of the
        same model enqueued at that moment (passed validation, not ended) exceed --enqueued-token-limit.

        Batches leave validating in the order of (time, creation); each is decided after every batch before it,
        whatever order their statuses are read in. Deciding one only advances batches before it, so this ends."""
        if self.enqueued_token_limit is None:
            return False
        # Not validated yet: it cannot leave validating before now, which is not before `at`.
        same_model = [other for other in self.batches.values() if other is not job and other.validated_at is not None and other.model == job.model]
        undecided = sorted((other for other in same_model if other.batch["status"] == "validating"), key=self._decision_order)
        for other in undecided:  # earliest first, so that each finds those before it decided: no deep recursion
            if self._decision_order(other) > (at, job.sequence):
                break  # decided after this batch: not enqueued yet
            self._advance(other)
        enqueued = 0
        for other in same_model:
            if other.batch["status"] != "validating":
                self._advance(other)
                enqueued += other.enqueued_tokens if other.enqueued_at(at) else 0
        return enqueued + job.enqueued_tokens > self.enqueued_token_limit

    @staticmethod
    def _decision_order(job):
        """When a batch in validating leaves it (its seconds passed and its input checked), then which was created first."""
        return max(job.created + job.timings.validating, job.validated_at), job.sequence

    def _record_progress(self, job, now):
        """Requests complete in proportion to the time spent in_progress (and no faster than the worker runs them)."""
        duration = job.timings.in_progress
        fraction = 1.0 if duration <= 0 else min(1.0, (now - job.status_entered) / duration)
        self._record_ran(job, min(job.executed, int(job.runnable * fraction)))

    def _record_ran(self, job, count):
        job.ran = count
        succeeded = job.succeeded[:count].count(1)
        job.batch["request_counts"].update(completed=succeeded, failed=count - succeeded)

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
        """Enter a terminal status that has results: publish the output and error files, final counts and usage."""
        ran, unrun_reason = job.written_plan
        output_size, error_size = job.result_sizes
        batch_id = job.batch["id"]
        job.batch["output_file_id"] = self._publish_result_file(job.output_path, f"{batch_id}_output.jsonl", output_size, job, at)
        job.batch["error_file_id"] = self._publish_result_file(job.error_path, f"{batch_id}_error.jsonl", error_size, job, at)
        succeeded = job.succeeded[:ran].count(1)
        unrun = len(job.custom_ids) - ran if unrun_reason else 0
        job.batch["request_counts"].update(completed=succeeded, failed=ran - succeeded + unrun)
        job.batch["usage"] = batch_usage(sum(job.input_tokens[:ran]), sum(job.output_tokens[:ran]))
        job.enter(status, at)

    def _publish_result_file(self, path, filename, size, job, at):
        if not size:
            remove_file(path)
            return None
        return self._store_file(filename, "batch_output", path, size, job.output_lifetime, at)["id"]

    # ----- batches: the worker (runs outside the lock, takes it to publish progress)

    def _start_worker(self, job, work):
        job.worker = threading.Thread(target=self._run_worker, args=(job, work), name=f"worker-{job.batch['id']}", daemon=True)
        job.worker.start()

    def _run_worker(self, job, work):
        try:
            work(job)
        except Exception:  # a bug: say so; the batch then stays in its status
            traceback.print_exc()
        finally:
            with self._lock:
                if job.worker is threading.current_thread():
                    job.worker = None

    def _work_on_batch(self, job):
        """Validate the input, run the requests in order, then write the result files the lifecycle wants."""
        try:
            if self._validate_input(job) and job.cancel_plan is None:
                self._execute(job)
        finally:
            remove_file(job.input_path)
        self._settle_results(job)

    def _validate_input(self, job):
        validator = BatchInputValidator(job.batch["endpoint"], self.max_batch_requests)
        with open(job.input_path, "rb") as lines:
            errors = validator.validate(lines)
        if not errors and job.injected_failure is not None:
            code, message = job.injected_failure
            errors = [batch_error(code, message or token_limit_message(validator.batch_model, self.enqueued_token_limit or 0))]
        with self._lock:
            job.validation_errors = errors
            job.custom_ids = [] if errors else validator.custom_ids
            job.model = validator.batch_model
            job.enqueued_tokens = validator.input_tokens
            job.validated_at = self.clock()
        return not errors

    def _execute(self, job):
        """Run requests in input order, appending each result line to the output or error file as it comes."""
        endpoint = job.batch["endpoint"]
        handler = self.endpoint_handlers.get(endpoint)
        output_size = error_size = 0
        with open(job.input_path, "rb") as lines, open(job.output_path, "wb") as output, open(job.error_path, "wb") as errors:
            for line in lines:
                if job.executed >= job.runnable or job.cancel_plan is not None or job.abandoned:
                    break
                if not line.strip():
                    continue
                outcome = run_task(handler, endpoint, json.loads(line))
                text = (json.dumps(outcome.output_line()) + "\n").encode("utf-8")
                input_tokens, output_tokens = usage_tokens(outcome.body.get("usage", {}) if outcome.succeeded else {})
                if outcome.succeeded:
                    output.write(text)
                    output_size += len(text)
                else:
                    errors.write(text)
                    error_size += len(text)
                with self._lock:
                    job.succeeded.append(outcome.succeeded)
                    job.input_tokens.append(input_tokens)
                    job.output_tokens.append(output_tokens)
                    job.output_ends.append(output_size)
                    job.error_ends.append(error_size)
                    job.executed += 1

    def _settle_results(self, job):
        """Write the result files the lifecycle wants until that stops changing (a cancel can change it at any time)."""
        while True:
            with self._lock:
                plan = job.wanted_plan()
                if job.abandoned or plan is None or plan == job.written_plan:
                    if job.worker is threading.current_thread():
                        job.worker = None  # under the lock, so a cancel from now on starts a new worker
                    break
            sizes = self._write_results(job, plan)
            with self._lock:
                job.written_plan, job.result_sizes, job.results_ready_at = plan, sizes, self.clock()
        if job.abandoned:
            remove_file(job.output_path)
            remove_file(job.error_path)

    def _write_results(self, job, plan):
        """Cut the result files back to the first `ran` requests and add a line for every request that did not run."""
        ran, unrun_reason = plan
        with self._lock:
            output_size = job.output_ends[ran - 1] if ran else 0
            error_size = job.error_ends[ran - 1] if ran else 0
            unrun_ids = job.custom_ids[ran:] if unrun_reason else []
        with open(job.output_path, "ab") as output:
            output.truncate(output_size)
        with open(job.error_path, "ab") as errors:
            errors.truncate(error_size)
            if unrun_ids:
                code, message = UNRUN_REASONS[unrun_reason]
                for custom_id in unrun_ids:
                    text = (json.dumps(unrun_output_line(custom_id, code, message)) + "\n").encode("utf-8")
                    errors.write(text)
                    error_size += len(text)
        return output_size, error_size

    # ----- synchronous endpoints

    def embeddings(self, request):
        return self.endpoint_handlers["/v1/embeddings"](json_object_body(request))

    def chat_completions(self, request):
        return self.endpoint_handlers["/v1/chat/completions"](json_object_body(request))

    def responses(self, request):
        return self.endpoint_handlers["/v1/responses"](json_object_body(request))

    def completions(self, request):
        return self.endpoint_handlers["/v1/completions"](json_object_body(request))


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
            body = self._request_body()
        except ApiError as error:
            self.close_connection = True  # where the body ends is unknown
            self._send(error_response(error))
            return
        try:
            response = self.server.emulator.handle(Request(self.command, url.path, dict(parse_qsl(url.query)), self.headers, body, url.query))
        except Exception:  # a bug must still produce an OpenAI-shaped 500 rather than a dropped connection
            traceback.print_exc()
            response = error_response(ApiError(500, SERVER_ERROR_MESSAGE, error_type="server_error"))
        try:
            # Read what the handler left (e.g. the rest of a refused upload), so that a client still sending gets
            # the answer instead of a reset connection, and the connection stays usable.
            body.drain()
        except (ApiError, OSError):
            self.close_connection = True
        self._send(response)

    def _request_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return ChunkedBody(self.rfile)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            raise ApiError(400, "Invalid Content-Length header.")
        return ContentLengthBody(self.rfile, length)

    def _send(self, response):
        body = response.body
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(body.length if isinstance(body, FileBody) else len(body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if isinstance(body, FileBody):
            body.send(self.connection)  # kernel to kernel: wfile is unbuffered, so the headers are already out
        else:
            self.wfile.write(body)


class EmulatorServer(ThreadingHTTPServer):
    """ThreadingHTTPServer (daemon request threads) that carries the emulator its handlers call."""

    def __init__(self, address, emulator):
        super().__init__(address, EmulatorRequestHandler)
        self.emulator = emulator

    def server_close(self):
        super().server_close()
        self.emulator.close()


def make_server(host, port, api_key, prefix="/openai", timings=None, dimensions=8, clock=time.time, data_dir=None,
                enqueued_token_limit=None, max_batch_requests=MAX_BATCH_TASKS, aws=None):
    """A bound, not yet serving, emulator server; call .serve_forever() (e.g. in a thread), .shutdown() and .server_close().

    `clock` returns Unix seconds; tests pass a fake one to step through the batch lifecycle instantly.
    `data_dir` holds the file contents; None makes a temporary directory that server_close() removes.
    `enqueued_token_limit` (None: no limit) and `max_batch_requests` are the --enqueued-token-limit and
    --max-batch-input-requests of the command line.
    `aws` (None: no Bedrock or SageMaker) holds AwsEmulator's access_key, secret_key, s3_endpoint and optional
    region and bedrock_min_records.
    """
    emulator = OpenAIEmulator(api_key, prefix, timings, dimensions, clock, data_dir, enqueued_token_limit, max_batch_requests, aws)
    return EmulatorServer((host, port), emulator)


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
    parser.add_argument("--enqueued-token-limit", type=int, help="OpenAI's batch queue limit per model: a batch whose input tokens, "
                        "with those of the model's batches already in_progress/finalizing/cancelling, exceed it fails validation "
                        "with token_limit_exceeded (default: no limit)")
    parser.add_argument("--max-batch-input-requests", type=int, default=MAX_BATCH_TASKS,
                        help="requests a batch input file may hold; more fail validation with too_many_tasks (default: OpenAI's 50,000)")
    parser.add_argument("--s3-endpoint-url", help="the S3 the Bedrock and SageMaker jobs read and write (the test bed's moto); with "
                        "$TESTBED_AWS_ACCESS_KEY_ID and $TESTBED_AWS_SECRET_ACCESS_KEY, the key every Bedrock and SageMaker call must be "
                        "signed with, it turns on /bedrock and /sagemaker")
    parser.add_argument("--aws-region", default="us-east-1", help="the region in the job ARNs")
    parser.add_argument("--bedrock-min-records", type=int, default=100,
                        help="Bedrock's minimum records per batch job (its quota; fewer fail validation)")
    parser.add_argument("--data-dir", help="directory for file contents (default: a new temporary directory, removed at exit); "
                                           "the files the emulator stored there are deleted at exit")
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error("--api-key (or $OPENAI_EMULATOR_API_KEY) is required")
    if not 1 <= args.dimensions <= MAX_EMBEDDING_DIMENSIONS:
        parser.error(f"--dimensions must be between 1 and {MAX_EMBEDDING_DIMENSIONS}")
    if args.enqueued_token_limit is not None and args.enqueued_token_limit < 1:
        parser.error("--enqueued-token-limit must be at least 1")
    if args.max_batch_input_requests < 1:
        parser.error("--max-batch-input-requests must be at least 1")
    return args


def exit_on_sigterm(_signal_number, _frame):
    raise SystemExit(0)  # unwinds serve_forever, so server_close() deletes the data files as on Ctrl-C


def main(argv=None):
    args = parse_args(argv)
    timings = Timings(args.validating_seconds, args.in_progress_seconds, args.finalizing_seconds, args.cancelling_seconds)
    aws = None
    if args.s3_endpoint_url:
        aws = {"access_key": os.environ["TESTBED_AWS_ACCESS_KEY_ID"], "secret_key": os.environ["TESTBED_AWS_SECRET_ACCESS_KEY"],
               "s3_endpoint": args.s3_endpoint_url, "region": args.aws_region, "bedrock_min_records": args.bedrock_min_records}
    server = make_server(args.host, args.port, args.api_key, args.prefix, timings, args.dimensions, data_dir=args.data_dir,
                         enqueued_token_limit=args.enqueued_token_limit, max_batch_requests=args.max_batch_input_requests, aws=aws)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
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
