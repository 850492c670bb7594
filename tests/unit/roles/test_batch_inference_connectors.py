"""The batch_inference role's connector bodies, rendered by Ansible's templating, against the fields
of ML Commons' batch blueprints (Bedrock and SageMaker cannot be reached from here), and the names
it gives downloads."""

import json
import os
import re

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

try:
    from ansible.template import trust_as_template
except ImportError:  # ansible-core before 2.19 treats every string as a possible template

    def trust_as_template(value):
        return value

import ansible_collections.opensearch.ml_commons as collection

ROLE = os.path.join(list(collection.__path__)[0], "roles", "batch_inference")


# The role's defaults read the environment with the env lookup; these tests run with it unset.
ENV_LOOKUP = re.compile(r"lookup\('ansible\.builtin\.env', '[A-Z_]+'\)")


def trusted(value):
    """Role files as Ansible loads them: their strings may be templates. Environment lookups read an
    unset variable: ansible-core before 2.19 templates every provider's body at once, and there is no
    plugin loader here to run the lookup."""
    if isinstance(value, dict):
        return dict((key, trusted(item)) for key, item in value.items())
    if isinstance(value, list):
        return [trusted(item) for item in value]
    return trust_as_template(ENV_LOOKUP.sub("''", value)) if isinstance(value, str) else value


def rendered(expression, **variables_set):
    """``expression`` rendered with the role's defaults and vars. The tests give every variable whose default is
    an environment lookup, so no plugin loader is needed."""
    loader = DataLoader()
    variables = {}
    for part in ("defaults", "vars"):
        variables.update(trusted(loader.load_from_file(os.path.join(ROLE, part, "main.yml"))))
    variables.update(variables_set)
    templar = Templar(loader=loader, variables=variables)
    # to_json renders every nested template, as the role's task arguments are.
    return json.loads(templar.template(trust_as_template("{{ %s | to_json }}" % expression)))


def render(provider, **overrides):
    """The provider's connector and the parameters its jobs share (each job's input is its own)."""
    overrides["batch_inference_provider"] = provider
    return (rendered("__batch_inference_connectors[batch_inference_provider]", **overrides),
            rendered("__batch_inference_job_parameters", **overrides))


def actions_by_type(body):
    return {action["action_type"]: action for action in body["actions"]}


def test_openai_follows_the_openai_blueprint():
    body, parameters = render("openai", batch_inference_openai_base_url="https://api.openai.com/v1", batch_inference_openai_api_key="sk-test")
    actions = actions_by_type(body)
    assert body["protocol"] == "http" and body["credential"] == {"openAI_key": "sk-test"}
    assert body["parameters"] == {"model": "text-embedding-ada-002", "endpoint": "/v1/embeddings"}
    assert actions["batch_predict"]["url"] == "https://api.openai.com/v1/batches"
    assert json.loads(actions["batch_predict"]["request_body"].replace("${parameters.input_file_id}", "f").replace("${parameters.endpoint}", "e")) == {
        "input_file_id": "f", "endpoint": "e", "completion_window": "24h"}
    assert actions["batch_predict_status"]["url"] == "https://api.openai.com/v1/batches/${parameters.id}"
    assert actions["cancel_batch_predict"]["url"] == "https://api.openai.com/v1/batches/${parameters.id}/cancel"
    # ML Commons sends every provider call with the predict action's headers: they must carry the key too.
    assert {action["headers"]["Authorization"] for action in actions.values()} == {"Bearer ${credential.openAI_key}"}
    assert parameters == {}


@pytest.mark.parametrize("endpoint, path, parameters, request_body", [
    ("/v1/embeddings", "embeddings", {"input": '["a"]'}, {"input": ["a"], "model": "m"}),
    ("/v1/chat/completions", "chat/completions", {"messages": '[{"role": "user", "content": "a"}]'},
     {"model": "m", "messages": [{"role": "user", "content": "a"}]}),
    ("/v1/responses", "responses", {"input": '"a"'}, {"model": "m", "input": "a"}),
    ("/v1/completions", "completions", {"prompt": '["a", "b"]'}, {"model": "m", "prompt": ["a", "b"]}),
])
def test_openai_predicts_on_the_endpoint_of_its_batches(endpoint, path, parameters, request_body):
    body, _parameters = render("openai", batch_inference_openai_base_url="https://api.openai.com/v1", batch_inference_openai_api_key="sk-test",
                               batch_inference_openai_endpoint=endpoint, batch_inference_openai_model="m")
    actions = actions_by_type(body)
    assert body["parameters"] == {"model": "m", "endpoint": endpoint}
    assert set(actions) == {"predict", "batch_predict", "batch_predict_status", "cancel_batch_predict"}
    predict = actions["predict"]
    assert (predict["method"], predict["url"]) == ("POST", "https://api.openai.com/v1/" + path)
    # ML Commons fills the request body from the connector's and the request's parameters, JSON spliced in as it is.
    filled = predict["request_body"]
    for name, value in dict(parameters, model="m").items():
        filled = filled.replace("${parameters.%s}" % name, value)
    assert json.loads(filled) == request_body
    batch = actions["batch_predict"]["request_body"].replace("${parameters.input_file_id}", "f").replace("${parameters.endpoint}", endpoint)
    assert json.loads(batch)["endpoint"] == endpoint


def test_the_openai_endpoints_of_the_connector_are_the_choices_of_the_argument_spec():
    specs = DataLoader().load_from_file(os.path.join(ROLE, "meta", "argument_specs.yml"))
    choices = specs["argument_specs"]["main"]["options"]["batch_inference_openai_endpoint"]["choices"]
    assert sorted(choices) == sorted(rendered("__batch_inference_openai_actions_by_endpoint.keys() | list"))
    assert sorted(choices) == ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"]


def filled(request_body, parameters):
    """A request body as ML Commons fills it from the request's parameters."""
    for name, value in parameters.items():
        request_body = request_body.replace("${parameters.%s}" % name, value if isinstance(value, str) else json.dumps(value))
    return json.loads(request_body)


def test_bedrock_follows_ml_commons_batch_job_shape():
    body, parameters = render("bedrock", batch_inference_aws_access_key="AK", batch_inference_aws_secret_key="SK",
                              batch_inference_aws_session_token="", batch_inference_aws_region="us-west-2",
                              batch_inference_bedrock_role_arn="arn:aws:iam::1:role/r", batch_inference_bedrock_input_s3_uri="s3://b/in.jsonl",
                              batch_inference_bedrock_output_s3_uri="s3://b/out/", batch_inference_bedrock_job_name="job-1")
    actions = actions_by_type(body)
    assert body["protocol"] == "aws_sigv4"
    assert body["credential"] == {"access_key": "AK", "secret_key": "SK"}
    assert body["parameters"] == {"region": "us-west-2", "service_name": "bedrock", "model": "amazon.titan-embed-text-v2:0"}
    batch = actions["batch_predict"]
    assert batch["url"] == "https://bedrock.${parameters.region}.amazonaws.com/model-invocation-job"
    assert batch["post_process_function"] == "connector.post_process.bedrock.batch_job_arn"
    # The input is each job's own (ml_batch_predict's input_parameter); the model is sent so that it enters the job's name.
    assert parameters == {"output_s3Uri": "s3://b/out/", "role_arn": "arn:aws:iam::1:role/r", "model": "amazon.titan-embed-text-v2:0",
                          "jobName": "job-1"}
    assert rendered("__batch_inference_job_fields.bedrock", batch_inference_provider="bedrock")["input"] == "input_s3Uri"
    request = filled(batch["request_body"], dict(parameters, input_s3Uri="s3://b/in.jsonl", model="m"))
    assert request == {"inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://b/in.jsonl"}}, "jobName": "job-1", "modelId": "m",
                       "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://b/out/"}}, "roleArn": "arn:aws:iam::1:role/r"}
    assert actions["batch_predict_status"]["url"].endswith("/model-invocation-job/${parameters.processedJobArn}")
    assert actions["cancel_batch_predict"]["url"].endswith("/model-invocation-job/${parameters.processedJobArn}/stop")


@pytest.mark.parametrize("endpoint_name, with_predict", [("", False), ("my-endpoint", True)])
def test_sagemaker_follows_the_sagemaker_blueprint(endpoint_name, with_predict):
    body, parameters = render("sagemaker", batch_inference_aws_region="us-east-1", batch_inference_aws_access_key="AK", batch_inference_aws_secret_key="SK",
                              batch_inference_aws_session_token="ST", batch_inference_sagemaker_model_name="DJL-model",
                              batch_inference_sagemaker_input_s3_uri="s3://b/in.json", batch_inference_sagemaker_output_s3_uri="s3://b/out",
                              batch_inference_sagemaker_job_name="tj-1", batch_inference_sagemaker_endpoint_name=endpoint_name,
                              __batch_inference_model={"model_id": "m1"})
    actions = actions_by_type(body)
    assert body["credential"] == {"access_key": "AK", "secret_key": "SK", "session_token": "ST"}
    assert body["parameters"]["service_name"] == "sagemaker"
    # The job's input and output are the request's: a new input changes no connector.
    assert "input_s3Uri" not in body["parameters"] and "output_s3Uri" not in body["parameters"]
    # SageMaker writes <output>/<input name>.out: each ML Commons model writes in a directory of its own.
    assert parameters == {"output_s3Uri": "s3://b/out/m1/", "ModelName": "DJL-model", "TransformJobName": "tj-1"}
    assert body["parameters"]["DataProcessing"] == {"InputFilter": "$.content", "JoinSource": "Input", "OutputFilter": "$"}
    assert body["parameters"]["BatchStrategy"] == "SingleRecord" and body["parameters"]["ModelName"] == "DJL-model"
    assert ("predict" in actions) is with_predict
    batch = actions["batch_predict"]
    assert batch["url"] == "https://api.sagemaker.${parameters.region}.amazonaws.com/CreateTransformJob"
    request = filled(batch["request_body"], dict(body["parameters"], **dict(parameters, input_s3Uri="s3://b/in.json")))
    assert request["TransformInput"] == {"ContentType": "application/json", "SplitType": "Line",
                                         "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/in.json"}}}
    assert request["TransformOutput"] == {"AssembleWith": "Line", "Accept": "application/json", "S3OutputPath": "s3://b/out/m1/"}
    assert (request["TransformJobName"], request["ModelName"], request["BatchStrategy"]) == ("tj-1", "DJL-model", "SingleRecord")
    assert request["DataProcessing"] == body["parameters"]["DataProcessing"]
    assert request["TransformResources"] == {"InstanceCount": 1, "InstanceType": "ml.c5.xlarge"}


AWS_CREDENTIALS = dict(batch_inference_aws_access_key="AK", batch_inference_aws_secret_key="SK", batch_inference_aws_session_token="",
                       batch_inference_aws_region="us-east-1")


@pytest.mark.parametrize("provider, field", [("bedrock", "jobName"), ("sagemaker", "TransformJobName")])
def test_a_job_is_named_by_ml_batch_predict_unless_a_name_is_given(provider, field):
    def job(**overrides):
        variables = dict(AWS_CREDENTIALS, batch_inference_s3_prefix="s3://b/p/", __batch_inference_model={"model_id": "m1"})
        variables.update(overrides)
        variables["batch_inference_provider"] = provider
        return render(provider, **variables)[1], rendered("__batch_inference_job_fields[batch_inference_provider]", **variables)

    parameters, fields = job()
    assert field not in parameters and fields["name"] == field
    # The teardown finds the model (ml_model_info) before it stops the jobs: the same parameters, so the same names.
    assert job(batch_inference_state="absent", __batch_inference_model={}, __batch_inference_models={"models": [{"model_id": "m1"}]})[0] == parameters
    # A teardown earlier in the play leaves its look-up behind: a run after it uses the model it deployed.
    assert job(__batch_inference_models={"models": [{"model_id": "m0"}]})[0] == parameters
    assert job(**{"batch_inference_%s_job_name" % provider: "given"})[0][field] == "given"


def test_the_endpoints_can_be_overridden_and_the_output_is_under_the_prefix():
    body, parameters = render("bedrock", batch_inference_bedrock_endpoint_url="http://10.0.0.1:8402/bedrock/", batch_inference_s3_prefix="s3://b/p/",
                              **AWS_CREDENTIALS)
    actions = actions_by_type(body)
    assert actions["batch_predict"]["url"] == "http://10.0.0.1:8402/bedrock/model-invocation-job"
    assert actions["cancel_batch_predict"]["url"] == "http://10.0.0.1:8402/bedrock/model-invocation-job/${parameters.processedJobArn}/stop"
    assert parameters["output_s3Uri"] == "s3://b/p/output/"
    body, parameters = render("sagemaker", batch_inference_sagemaker_endpoint_url="https://vpce.example.com", batch_inference_s3_prefix="s3://b/p/",
                              batch_inference_sagemaker_model_name="m", __batch_inference_model={"model_id": "m1"}, **AWS_CREDENTIALS)
    assert actions_by_type(body)["batch_predict"]["url"] == "https://vpce.example.com/CreateTransformJob"
    assert parameters["output_s3Uri"] == "s3://b/p/output/m1/"


@pytest.mark.parametrize("input_file, host, part, attempt, job_input, expected", [
    ("/data/corpus.v2.jsonl", "search-eu-1", 3, 2, "5891b5b522d5df08", "corpus.v2.search-eu-1.part-00003.attempt-2.5891b5b522d5df08"),
    ("", "localhost", "1", 1, "file-abc", "batch-inference.localhost.part-00001.attempt-1.file-abc"),
    # A host name is made a plain name: it never adds a directory.
    ("/data/in.jsonl", "../../etc/x:22", 1, 1, "ab", "in..._.._etc_x_22.part-00001.attempt-1.ab"),
])
def test_a_download_is_named_after_the_input_the_host_the_part_the_attempt_and_the_job_input(input_file, host, part, attempt, job_input, expected):
    assert rendered("__batch_inference_download_name", batch_inference_input_file=input_file, inventory_hostname=host,
                    __batch_inference_download_part=part, __batch_inference_download_attempt=attempt,
                    __batch_inference_download_input=job_input) == expected
