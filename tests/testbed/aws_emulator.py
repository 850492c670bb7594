"""The Bedrock batch inference and SageMaker batch transform APIs, for the test bed's emulator.

openai_emulator.py serves these beside OpenAI's API, in the same process: requests under ``/bedrock``
and ``/sagemaker`` come here. Jobs read their input from the test bed's S3 (moto's server) and write
their output there, as the services do. Every call must carry a valid SigV4 signature made with the
test bed's key (sigv4_verify.py): a missing or wrong one is answered 403 before anything else.

Bedrock (REST JSON, signing name ``bedrock``), under ``/bedrock``:
    POST /model-invocation-job                        CreateModelInvocationJob -> {"jobArn"}
    GET  /model-invocation-job/{jobIdentifier}        GetModelInvocationJob (the ARN, ``/`` sent as ``%2F``, or the id)
    GET  /model-invocation-jobs                       ListModelInvocationJobs
    POST /model-invocation-job/{jobIdentifier}/stop   StopModelInvocationJob
  Submitted -> Validating (the emulator's validating seconds) -> InProgress (in_progress + finalizing seconds) ->
  Completed, or Failed (input missing or unreadable, fewer records than the minimum, more than the maximum);
  Stop: Stopping (cancelling seconds) -> Stopped. Output: ``<output uri>/<job id>/<input file name>.out`` for each
  ``.jsonl`` input (``{recordId, modelInput, modelOutput}`` or ``{recordId, modelInput, error}`` a line, records
  in an order other than the input's, as the service does not promise it) and ``manifest.json.out`` with the
  counts. Each record gets a Titan-style embedding of ``modelInput.inputText``.
SageMaker (JSON 1.1, signing name ``sagemaker``), under ``/sagemaker``:
    POST /  with X-Amz-Target: SageMaker.CreateTransformJob|DescribeTransformJob|StopTransformJob  (AWS's clients)
    POST /CreateTransformJob, /DescribeTransformJob, /StopTransformJob  (ML Commons' blueprint puts the action in
                                                                         the path and derives the other two from it)
  InProgress (validating + in_progress + finalizing seconds) -> Completed or Failed; Stop: Stopping -> Stopped.
  Each input object under TransformInput.DataSource.S3DataSource.S3Uri gives ``<S3OutputPath>/<its name>.out``
  (written only when the whole object was transformed); with SplitType Line, one record a line, each passed
  through DataProcessing (InputFilter, JoinSource, OutputFilter: a subset of JSONPath as SageMaker's); the model
  (any ModelName) answers each record with an embedding of its text.
Job names are unique (a second create with a name is refused as the services refuse it); any well-formed
role ARN is accepted.
"""

import collections
import datetime
import json
import re
import secrets
import string
import threading
from urllib.parse import parse_qsl, unquote

from sigv4_verify import SignatureRefused, SigV4Verifier

ACCOUNT_ID = "123456789012"
BEDROCK_JOB_NAME = re.compile(r"^[a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\+\-\.]){0,63}$")
BEDROCK_JOB_ARN = re.compile(r"^arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:model-invocation-job/([a-z0-9]{12})$")
ROLE_ARN = re.compile(r"^arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+$")
TRANSFORM_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/.*)?$")
# Bedrock's batch inference quotas as the emulator applies them (per job; adjustable per account at AWS):
# https://docs.aws.amazon.com/bedrock/latest/userguide/quotas.html ("Minimum number of records per batch
# inference job", "Records per batch inference job").
BEDROCK_MIN_RECORDS = 100
BEDROCK_MAX_RECORDS = 50_000
BEDROCK_FINAL = ("Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired")
SAGEMAKER_FINAL = ("Completed", "Failed", "Stopped")
SAGEMAKER_ACTIONS = ("CreateTransformJob", "DescribeTransformJob", "StopTransformJob")
BEDROCK_ROUTES = (
    ("POST", re.compile(r"^/model-invocation-job$"), "POST /model-invocation-job", "create_bedrock_job"),
    ("GET", re.compile(r"^/model-invocation-jobs$"), "GET /model-invocation-jobs", "list_bedrock_jobs"),
    ("GET", re.compile(r"^/model-invocation-job/([^/]+)$"), "GET /model-invocation-job/{jobIdentifier}", "get_bedrock_job"),
    ("POST", re.compile(r"^/model-invocation-job/([^/]+)/stop$"), "POST /model-invocation-job/{jobIdentifier}/stop", "stop_bedrock_job"),
)
ID_ALPHABET = string.ascii_lowercase + string.digits


class AwsError(Exception):
    """An AWS error: HTTP status, error code (x-amzn-ErrorType, or __type in JSON 1.1) and message."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def validation(message):
    return AwsError(400, "ValidationException", message)


def iso_time(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def split_s3_uri(uri, field):
    match = S3_URI.match(uri or "") if isinstance(uri, str) else None
    if not match:
        raise validation(f"1 validation error detected: Value '{uri}' at '{field}' failed to satisfy constraint: "
                         "Member must satisfy regular expression pattern: s3://...")
    return match[1], (match[2] or "/")[1:]


def required(body, name, where=""):
    value = body.get(name) if isinstance(body, dict) else None
    if value in (None, "", {}):
        raise validation(f"1 validation error detected: Value null at '{where}{name}' failed to satisfy constraint: "
                         "Member must not be null")
    return value


# --------------------------------------------------------------------------- SageMaker's JSONPath subset

JSONPATH_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(-?\d+)\]|\[(-?\d*):(-?\d*)\]|\[((?:'[^']*'\s*,?\s*)+)\]|\[((?:-?\d+\s*,\s*)+-?\d+)\]")


def jsonpath_steps(path):
    """The steps of a JSONPath of the operators SageMaker's DataProcessing documents: ``$``, ``.key``, ``['key']``,
    ``['a','b']`` (an object of those keys), ``[n]``, ``[n,m]``, ``[a:b]``; ValueError for anything else."""
    if not isinstance(path, str) or not path.startswith("$"):
        raise ValueError(f"JSONPath {path!r} does not start with $")
    steps, position = [], 1
    while position < len(path):
        step = JSONPATH_STEP.match(path, position)
        if not step:
            raise ValueError(f"JSONPath {path!r}: unsupported at {path[position:]!r}")
        steps.append(step.groups())
        position = step.end()
    return steps


def apply_jsonpath(path, value):
    """The part of ``value`` that ``path`` selects; ValueError when it selects nothing (SageMaker fails the record)."""
    current = value
    for key, index, start, stop, keys, indexes in jsonpath_steps(path):
        names = [key] if key is not None else re.findall(r"'([^']*)'", keys) if keys is not None else None
        if names is not None:
            if not isinstance(current, dict) or not all(name in current for name in names):
                raise ValueError(f"JSONPath {path!r} selects nothing")
            current = current[names[0]] if len(names) == 1 else {name: current[name] for name in names}
            continue
        if not isinstance(current, list):
            raise ValueError(f"JSONPath {path!r} selects nothing")
        if index is not None:
            if not -len(current) <= int(index) < len(current):
                raise ValueError(f"JSONPath {path!r} selects nothing")
            current = current[int(index)]
        elif indexes is not None:
            current = [current[int(item)] for item in indexes.split(",") if -len(current) <= int(item) < len(current)]
        else:
            current = current[int(start) if start else None:int(stop) if stop else None]
    return current


def join_with_input(record, output):
    """JoinSource Input, as SageMaker joins a JSON record: an object gets the output under SageMakerOutput; an
    array gets it appended."""
    if isinstance(record, dict):
        return {**record, "SageMakerOutput": output}
    if isinstance(record, list):
        return [*record, output]
    raise ValueError("JoinSource Input needs a JSON object or array as the input record")


def model_text(model_input):
    """The text an embedding model reads from a record: the string itself, else its JSON."""
    if isinstance(model_input, str):
        return model_input
    if isinstance(model_input, dict):
        for key in ("inputs", "text_inputs", "inputText", "input"):
            if isinstance(model_input.get(key), str):
                return model_input[key]
    return json.dumps(model_input, sort_keys=True)


# --------------------------------------------------------------------------- jobs

class Job:
    """One job of either service; ``phases`` is its status timeline: (status, seconds), the last one open-ended."""

    def __init__(self, name, request, created, phases):
        self.name = name
        self.request = request
        self.created = created
        self.phases = phases
        self.stop_requested_at = None
        self.ended = None
        self.final_status = None
        self.message = None
        self.counts = None
        self.ran = False

    def scheduled_status(self, now):
        at = self.created
        for status, seconds in self.phases:
            if now < at + seconds:
                return status, at + seconds
            at += seconds
        return None, at


class AwsEmulator:
    """Bedrock's and SageMaker's batch APIs; state kept behind one lock, S3 work done when a job's time has come."""

    def __init__(self, access_key, secret_key, s3_endpoint, timings, embed, clock, region="us-east-1",
                 bedrock_min_records=BEDROCK_MIN_RECORDS, bedrock_max_records=BEDROCK_MAX_RECORDS):
        self.verifiers = {
            "/bedrock": SigV4Verifier({access_key: secret_key}, ("bedrock",), clock),
            "/sagemaker": SigV4Verifier({access_key: secret_key}, ("sagemaker",), clock),
        }
        self.region = region
        self.timings = timings
        self.embed = embed
        self.clock = clock
        self.bedrock_min_records = bedrock_min_records
        self.bedrock_max_records = bedrock_max_records
        self._s3_settings = (access_key, secret_key, s3_endpoint)
        self._s3 = None
        self._lock = threading.Lock()
        self.reset()

    def reset(self):
        with self._lock:
            self.bedrock_jobs = {}  # job id -> Job
            self.transform_jobs = {}  # lower-cased name -> Job (SageMaker's names are case-insensitive)
            self.request_counts = collections.Counter()
            self.jobs_created = collections.Counter()

    @property
    def s3(self):
        if self._s3 is None:
            import botocore.config
            import botocore.session
            access_key, secret_key, endpoint = self._s3_settings
            self._s3 = botocore.session.get_session().create_client(
                "s3", endpoint_url=endpoint, region_name=self.region, aws_access_key_id=access_key,
                aws_secret_access_key=secret_key, config=botocore.config.Config(s3={"addressing_style": "path"}))
        return self._s3

    def stats(self):
        with self._lock:
            return {"bedrock_jobs_created": self.jobs_created["bedrock"],
                    "sagemaker_jobs_created": self.jobs_created["sagemaker"]}, dict(self.request_counts)

    # ----- dispatch

    def handles(self, path):
        return any(path == prefix or path.startswith(prefix + "/") for prefix in self.verifiers)

    def handle(self, method, raw_path, raw_query, headers, body):
        """(status, headers, JSON body) for one request; ``raw_path`` undecoded, as the request line has it."""
        prefix = "/bedrock" if raw_path.startswith("/bedrock") else "/sagemaker"
        relative = raw_path[len(prefix):] or "/"
        try:
            if prefix == "/bedrock":
                handler, ids = self._bedrock_route(method, relative)
            else:
                handler, ids = self._sagemaker_route(method, relative, headers)
            target = raw_path + (f"?{raw_query}" if raw_query else "")
            self.verifiers[prefix].check(method, target, headers, body)
            payload = self._json(body) if method == "POST" else dict(parse_qsl(raw_query))
            with self._lock:
                return 200, {}, handler(payload, *ids)
        except SignatureRefused as refused:
            return self._error(prefix, AwsError(refused.status, refused.code, refused.message))
        except AwsError as error:
            return self._error(prefix, error)

    def _bedrock_route(self, method, relative):
        matched = False
        for route_method, pattern, name, handler in BEDROCK_ROUTES:
            match = pattern.match(relative)
            if match:
                matched = True
                if route_method == method:
                    with self._lock:
                        self.request_counts[name] += 1
                    return getattr(self, handler), match.groups()
        if matched:
            raise AwsError(405, "MethodNotAllowedException", f"Method {method} is not allowed for {relative}")
        raise AwsError(404, "UnknownOperationException", f"No operation at {method} {relative}")

    def _sagemaker_route(self, method, relative, headers):
        target = headers.get("X-Amz-Target") or ""
        action = target.split(".", 1)[1] if target.startswith("SageMaker.") else relative.strip("/")
        if method != "POST" or action not in SAGEMAKER_ACTIONS:
            raise AwsError(400, "UnknownOperationException", f"Unknown operation {target or relative}")
        with self._lock:
            self.request_counts[action] += 1
        return getattr(self, {"CreateTransformJob": "create_transform_job", "DescribeTransformJob": "describe_transform_job",
                              "StopTransformJob": "stop_transform_job"}[action]), ()

    @staticmethod
    def _json(body):
        try:
            payload = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise AwsError(400, "SerializationException", "Could not parse the request body as JSON") from None
        if not isinstance(payload, dict):
            raise AwsError(400, "SerializationException", "The request body must be a JSON object")
        return payload

    @staticmethod
    def _error(prefix, error):
        request_id = secrets.token_hex(16)
        if prefix == "/bedrock":
            return error.status, {"x-amzn-ErrorType": error.code, "x-amzn-RequestId": request_id}, {"message": error.message}
        return error.status, {"x-amzn-RequestId": request_id}, {"__type": error.code, "message": error.message}

    # ----- Bedrock

    def create_bedrock_job(self, body):
        name = required(body, "jobName")
        if not isinstance(name, str) or not BEDROCK_JOB_NAME.match(name) or len(name) > 63:
            raise validation(f"1 validation error detected: Value '{name}' at 'jobName' failed to satisfy constraint: "
                             f"Member must satisfy regular expression pattern: {BEDROCK_JOB_NAME.pattern[1:-1]}")
        role = required(body, "roleArn")
        if not isinstance(role, str) or not ROLE_ARN.match(role):
            raise validation(f"1 validation error detected: Value '{role}' at 'roleArn' failed to satisfy constraint: "
                             f"Member must satisfy regular expression pattern: {ROLE_ARN.pattern[1:-1]}")
        required(body, "modelId")
        split_s3_uri(required(required(body, "inputDataConfig"), "s3InputDataConfig", "inputDataConfig.").get("s3Uri"),
                     "inputDataConfig.s3InputDataConfig.s3Uri")
        split_s3_uri(required(required(body, "outputDataConfig"), "s3OutputDataConfig", "outputDataConfig.").get("s3Uri"),
                     "outputDataConfig.s3OutputDataConfig.s3Uri")
        token = body.get("clientRequestToken")
        for job_id, job in self.bedrock_jobs.items():
            if token and job.request.get("clientRequestToken") == token:
                return {"jobArn": self._bedrock_arn(job_id)}  # the same token: the job that request made
            if job.name == name:
                raise AwsError(400, "ConflictException", f"The provided job name is currently in use: {name}")
        job_id = "".join(secrets.choice(ID_ALPHABET) for _position in range(12))
        half = self.timings().validating / 2
        phases = [("Submitted", half), ("Validating", half),
                  ("InProgress", self.timings().in_progress + self.timings().finalizing), ("Completed", float("inf"))]
        self.bedrock_jobs[job_id] = Job(name, body, self.clock(), phases)
        self.jobs_created["bedrock"] += 1
        return {"jobArn": self._bedrock_arn(job_id)}

    def _bedrock_arn(self, job_id):
        return f"arn:aws:bedrock:{self.region}:{ACCOUNT_ID}:model-invocation-job/{job_id}"

    def _bedrock_job(self, identifier):
        identifier = unquote(identifier)
        match = BEDROCK_JOB_ARN.match(identifier)
        job_id = match[2] if match else identifier
        if job_id not in self.bedrock_jobs:
            raise AwsError(404, "ResourceNotFoundException", f"The specified job {identifier} was not found.")
        return job_id, self.bedrock_jobs[job_id]

    def get_bedrock_job(self, _query, identifier):
        job_id, job = self._bedrock_job(identifier)
        return self._bedrock_view(job_id, job)

    def list_bedrock_jobs(self, query):
        summaries = [self._bedrock_view(job_id, job) for job_id, job in self.bedrock_jobs.items()]
        if query.get("statusEquals"):
            summaries = [summary for summary in summaries if summary["status"] == query["statusEquals"]]
        if query.get("nameContains"):
            summaries = [summary for summary in summaries if query["nameContains"] in summary["jobName"]]
        summaries.sort(key=lambda summary: summary["submitTime"], reverse=query.get("sortOrder", "Descending") == "Descending")
        try:
            limit = int(query.get("maxResults", 1000))
            start = int(query.get("nextToken") or 0)
        except ValueError:
            raise validation("maxResults and nextToken must be numbers") from None
        page = {"invocationJobSummaries": summaries[start:start + limit]}
        if start + limit < len(summaries):
            page["nextToken"] = str(start + limit)
        return page

    def stop_bedrock_job(self, _body, identifier):
        job_id, job = self._bedrock_job(identifier)
        status = self._bedrock_status(job_id, job)
        if status in BEDROCK_FINAL or status == "Stopping":
            raise validation(f"The job {self._bedrock_arn(job_id)} cannot be stopped in its current status: {status}")
        self._stop(job)
        return {}

    def _stop(self, job):
        now = self.clock()
        job.stop_requested_at = now
        job.phases = [("Stopping", now - job.created + self.timings().cancelling), ("Stopped", float("inf"))]

    def _bedrock_status(self, job_id, job):
        if job.final_status:
            return job.final_status
        now = self.clock()
        status, _ends = job.scheduled_status(now)
        if job.stop_requested_at is None:
            if status in ("InProgress", "Completed") and not job.ran:
                self._validate_bedrock(job_id, job)
            if status == "Completed" and not job.final_status:
                self._run_bedrock(job_id, job)
        elif status == "Stopped":
            job.final_status, job.ended = "Stopped", job.created + job.phases[0][1]
        return job.final_status or status

    def _fail(self, job, message, at=None):
        job.final_status, job.message, job.ended = "Failed", message, at or self.clock()
        job.ran = True

    def _input_objects(self, uri, suffix=None):
        """The (key, size) of each object the URI names: the object itself, or those under it as a prefix."""
        bucket, key = split_s3_uri(uri, "s3Uri")
        from botocore.exceptions import ClientError
        try:
            listed = self.s3.list_objects_v2(Bucket=bucket, Prefix=key)
        except ClientError as error:
            raise AwsError(400, "ValidationException", f"Unable to read {uri}: {error.response['Error'].get('Message')}") from None
        objects = [(item["Key"], item["Size"]) for item in listed.get("Contents", [])
                   if not item["Key"].endswith("/") and (suffix is None or item["Key"].endswith(suffix))]
        exact = [(name, size) for name, size in objects if name == key]
        return bucket, exact or objects

    def _read_lines(self, bucket, key):
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
        for line in body.iter_lines():
            if line.strip():
                yield line.decode("utf-8")

    def _validate_bedrock(self, job_id, job):
        """Validating: the input exists and holds records within the quotas; else the job fails."""
        if job.counts is not None:
            return
        uri = job.request["inputDataConfig"]["s3InputDataConfig"]["s3Uri"]
        try:
            bucket, objects = self._input_objects(uri, ".jsonl")
            if not objects:
                raise AwsError(400, "ValidationException", f"No .jsonl input file found at {uri}")
            records = sum(1 for key, _size in objects for _line in self._read_lines(bucket, key))
        except AwsError as error:
            self._fail(job, error.message)
            return
        if records < self.bedrock_min_records:
            self._fail(job, f"The job has {records} records, fewer than the minimum of {self.bedrock_min_records} records per batch inference job.")
        elif records > self.bedrock_max_records:
            self._fail(job, f"The job has {records} records, more than the maximum of {self.bedrock_max_records} records per batch inference job.")
        job.counts = {"totalRecordCount": records, "processedRecordCount": 0, "successRecordCount": 0, "errorRecordCount": 0}

    def _run_bedrock(self, job_id, job):
        """Write each input file's results and the manifest, as the service does when a job completes."""
        bucket, objects = self._input_objects(job.request["inputDataConfig"]["s3InputDataConfig"]["s3Uri"], ".jsonl")
        out_bucket, out_key = split_s3_uri(job.request["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"], "s3Uri")
        out_prefix = f"{out_key.rstrip('/')}/{job_id}/" if out_key.strip("/") else f"{job_id}/"
        counts = {"totalRecordCount": 0, "processedRecordCount": 0, "successRecordCount": 0, "errorRecordCount": 0,
                  "inputTokenCount": 0, "outputTokenCount": 0}
        for key, _size in objects:
            lines = []
            for number, text in enumerate(self._read_lines(bucket, key), 1):
                counts["totalRecordCount"] += 1
                counts["processedRecordCount"] += 1
                line, tokens = self._bedrock_record(text, number)
                counts["successRecordCount" if "modelOutput" in line else "errorRecordCount"] += 1
                counts["inputTokenCount"] += tokens
                lines.append(json.dumps(line))
            # The service does not keep the input's order: pairs of lines swapped.
            for index in range(0, len(lines) - 1, 2):
                lines[index], lines[index + 1] = lines[index + 1], lines[index]
            name = key.rsplit("/", 1)[-1]
            self.s3.put_object(Bucket=out_bucket, Key=f"{out_prefix}{name}.out", Body=("\n".join(lines) + "\n").encode("utf-8"))
        self.s3.put_object(Bucket=out_bucket, Key=f"{out_prefix}manifest.json.out", Body=json.dumps(counts).encode("utf-8"))
        job.counts = counts
        job.final_status = "Completed" if counts["errorRecordCount"] == 0 else "PartiallyCompleted"
        job.ended = self.clock()
        job.ran = True

    def _bedrock_record(self, text, number):
        try:
            record = json.loads(text)
        except ValueError:
            return {"recordId": None, "modelInput": text, "error": {"errorCode": 400, "errorMessage": "Malformed input record: not JSON"}}, 0
        if not isinstance(record, dict):
            return {"recordId": None, "modelInput": record, "error": {"errorCode": 400, "errorMessage": "Malformed input record: not an object"}}, 0
        record_id = record.get("recordId") or f"{number:011d}"
        model_input = record.get("modelInput")
        if not isinstance(model_input, dict) or not isinstance(model_input.get("inputText"), str):
            return {"recordId": record_id, "modelInput": model_input,
                    "error": {"errorCode": 400, "errorMessage": "Malformed input request: #: required key [inputText] not found"}}, 0
        tokens = len(model_input["inputText"].split())
        return {"recordId": record_id, "modelInput": model_input,
                "modelOutput": {"embedding": self.embed(model_input["inputText"]), "inputTextTokenCount": tokens}}, tokens

    def _bedrock_view(self, job_id, job):
        status = self._bedrock_status(job_id, job)
        view = {"jobArn": self._bedrock_arn(job_id), "jobName": job.name, "modelId": job.request["modelId"],
                "roleArn": job.request["roleArn"], "status": status, "submitTime": iso_time(job.created),
                "lastModifiedTime": iso_time(job.ended or self.clock()),
                "inputDataConfig": job.request["inputDataConfig"], "outputDataConfig": job.request["outputDataConfig"],
                "timeoutDurationInHours": job.request.get("timeoutDurationInHours", 24),
                "jobExpirationTime": iso_time(job.created + 24 * 3600)}
        for field in ("clientRequestToken", "vpcConfig", "modelInvocationType"):
            if field in job.request:
                view[field] = job.request[field]
        if job.message:
            view["message"] = job.message
        if job.ended and status in BEDROCK_FINAL:
            view["endTime"] = iso_time(job.ended)
        if job.counts:
            view.update({key: value for key, value in job.counts.items() if key.endswith("RecordCount")})
        return view

    # ----- SageMaker

    def create_transform_job(self, body):
        name = required(body, "TransformJobName")
        if not isinstance(name, str) or not TRANSFORM_JOB_NAME.match(name):
            raise validation(f"1 validation error detected: Value '{name}' at 'transformJobName' failed to satisfy constraint: "
                             f"Member must satisfy regular expression pattern: {TRANSFORM_JOB_NAME.pattern[1:-1]}")
        required(body, "ModelName")
        source = required(required(required(body, "TransformInput"), "DataSource", "transformInput."), "S3DataSource",
                          "transformInput.dataSource.")
        split_s3_uri(source.get("S3Uri"), "transformInput.dataSource.s3DataSource.s3Uri")
        split_s3_uri(required(body, "TransformOutput").get("S3OutputPath"), "transformOutput.s3OutputPath")
        resources = required(body, "TransformResources")
        required(resources, "InstanceType", "transformResources.")
        required(resources, "InstanceCount", "transformResources.")
        processing = body.get("DataProcessing") or {}
        for field in ("InputFilter", "OutputFilter"):
            try:
                jsonpath_steps(processing.get(field, "$"))
            except ValueError as error:
                raise validation(f"DataProcessing.{field}: {error}") from None
        if processing.get("JoinSource", "None") not in ("Input", "None"):
            raise validation(f"DataProcessing.JoinSource must be Input or None, not {processing['JoinSource']!r}")
        if name.lower() in self.transform_jobs:
            raise AwsError(400, "ResourceInUse", "Transform job names must be unique within an AWS account and region, and a "
                                                 f"transform job with this name already exists ({self._transform_arn(name)})")
        phases = [("InProgress", self.timings().validating + self.timings().in_progress + self.timings().finalizing),
                  ("Completed", float("inf"))]
        self.transform_jobs[name.lower()] = Job(name, body, self.clock(), phases)
        self.jobs_created["sagemaker"] += 1
        return {"TransformJobArn": self._transform_arn(name)}

    def _transform_arn(self, name):
        return f"arn:aws:sagemaker:{self.region}:{ACCOUNT_ID}:transform-job/{name.lower()}"

    def _transform_job(self, body):
        name = required(body, "TransformJobName")
        job = self.transform_jobs.get(str(name).lower())
        if job is None:
            raise validation(f"Could not find requested job with name {name}")
        return job

    def describe_transform_job(self, body):
        job = self._transform_job(body)
        status = self._transform_status(job)
        request = job.request
        view = {"TransformJobName": job.name, "TransformJobArn": self._transform_arn(job.name), "TransformJobStatus": status,
                "ModelName": request["ModelName"], "TransformInput": request["TransformInput"],
                "TransformOutput": request["TransformOutput"], "TransformResources": request["TransformResources"],
                "CreationTime": job.created, "TransformStartTime": job.created}
        for field in ("BatchStrategy", "DataProcessing", "Environment", "MaxConcurrentTransforms", "MaxPayloadInMB"):
            if field in request:
                view[field] = request[field]
        if job.message:
            view["FailureReason"] = job.message
        if status in SAGEMAKER_FINAL:
            view["TransformEndTime"] = job.ended
        return view

    def stop_transform_job(self, body):
        job = self._transform_job(body)
        status = self._transform_status(job)
        if status in SAGEMAKER_FINAL or status == "Stopping":
            raise validation(f"Transform job {job.name} is in status {status} and cannot be stopped")
        self._stop(job)
        return {}

    def _transform_status(self, job):
        if job.final_status:
            return job.final_status
        status, _ends = job.scheduled_status(self.clock())
        if job.stop_requested_at is not None:
            if status == "Stopped":
                job.final_status, job.ended = "Stopped", job.created + job.phases[0][1]
        elif status == "Completed":
            self._run_transform(job)
        return job.final_status or status

    def _run_transform(self, job):
        request = job.request
        uri = request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
        try:
            bucket, objects = self._input_objects(uri)
            if not objects:
                raise AwsError(400, "ValidationException", f"No S3 objects found under S3 URL \"{uri}\" given in input data source. "
                                                           "Please ensure that the bucket exists in the selected region, that objects exist "
                                                           "under that S3 prefix, and that the role has permission to read them.")
            out_bucket, out_key = split_s3_uri(request["TransformOutput"]["S3OutputPath"], "S3OutputPath")
            _bucket, in_key = split_s3_uri(uri, "S3Uri")
            base = in_key.rsplit("/", 1)[0] + "/" if "/" in in_key else ""
            outputs = [(f"{out_key.rstrip('/')}/{key[len(base):]}.out".lstrip("/"), self._transform_object(job, bucket, key))
                       for key, _size in objects]
        except (AwsError, ValueError) as error:
            self._fail(job, f"ClientError: {getattr(error, 'message', error)}")
            return
        # Only whole objects are written, once every record of every object went through.
        for key, text in outputs:
            self.s3.put_object(Bucket=out_bucket, Key=key, Body=text.encode("utf-8"))
        job.final_status, job.ended, job.ran = "Completed", self.clock(), True

    def _transform_object(self, job, bucket, key):
        """The output of one input object: with SplitType Line, a record a line, each through DataProcessing."""
        request = job.request
        processing = request.get("DataProcessing") or {}
        input_filter, output_filter = processing.get("InputFilter", "$"), processing.get("OutputFilter", "$")
        join = processing.get("JoinSource", "None")
        split = request["TransformInput"].get("SplitType", "None")
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        records = [line for line in body.splitlines() if line.strip()] if split == "Line" else [body]
        separator = "\n" if request["TransformOutput"].get("AssembleWith", "None") == "Line" else ""
        lines = []
        for number, text in enumerate(records, 1):
            try:
                record = json.loads(text)
                model_input = apply_jsonpath(input_filter, record)
                output = self.embed(model_text(model_input))
                joined = join_with_input(record, output) if join == "Input" else output
                lines.append(json.dumps(apply_jsonpath(output_filter, joined)))
            except ValueError as error:
                raise ValueError(f"record {number} of s3://{bucket}/{key}: {error}") from None
        return separator.join(lines) + (separator if lines and separator else "")
