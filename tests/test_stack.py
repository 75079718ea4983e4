"""infra/template.yaml as users deploy it.

The template is translated with aws-sam-translator (as `sam deploy` does), created on the moto
server through CloudFormation and read back; then the receiver and fanout binaries run under the
Lambda runtime API (`cargo lambda watch`) with the configuration the stack gave its functions,
a signed event goes through to a loopback subscriber, and `relay --aws --stack NAME` shows it and
its attempts.

moto's CloudFormation cannot create everything the template holds. Each gap is one named
adjustment of moto's copy (`MOTO_ADJUSTMENTS`), and what it takes out is asserted on the
translated template instead (`test_what_moto_cannot_create_is_asserted_on_the_translation`).
Between each function and moto sits a `CallRecorder`, so the AWS calls each function makes are
compared with what its role grants.
"""

import ast
import base64
import copy
import hashlib
import io
import json
import os
import re
import shlex
import subprocess
import tomllib
import time
import uuid
import zipfile
from pathlib import Path

import pytest
import requests
from standardwebhooks.webhooks import Webhook

import emf
from aws_calls import CallRecorder
from conftest import ROOT, tail, wait_until
from lambda_support import (CARGO_LAMBDA, MOTO, REGION, Watch, aws_env, boto,
                            github_function_url_event)
from standins.github_api import GithubApi
from standins.stripe_api import StripeApi

TEMPLATE = ROOT / "infra" / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
CODE_BUCKET = "relay-stack-test-code"
CODE_KEY = "bootstrap.zip"
RECEIVER_FIXTURE = ROOT / "events" / "receiver-github-push.json"
FANOUT_FIXTURE = ROOT / "events" / "fanout-sqs-event.json"
FIXTURE_SECRET = "fixture-github-secret"  # events/README.md
BUILD_TIMEOUT = 900

# What the Lambda service itself does with a function's role, not the function's code: write its
# logs, and (fanout) poll its queues for the event source mappings.
PLATFORM_ACTIONS = {
    "receiver": {"logs:CreateLogStream", "logs:PutLogEvents"},
    "fanout": {"logs:CreateLogStream", "logs:PutLogEvents", "sqs:ReceiveMessage",
               "sqs:DeleteMessage", "sqs:GetQueueAttributes"},
    "reconcile": {"logs:CreateLogStream", "logs:PutLogEvents"},
}

# The bodies bucket's grants (bodies over 256 KiB), made by test_large_body_through_the_stack
# (reconcile's: the receiver's path, for a recovered event over 256 KiB; not exercised here).
BODY_ACTIONS = {
    "receiver": {"s3:PutObject", "s3:DeleteObject"},
    "fanout": {"s3:GetObject"},
    "reconcile": {"s3:PutObject", "s3:DeleteObject"},
}

needs_moto = pytest.mark.skipif(not MOTO, reason="MOTO_ENDPOINT is not set (scripts/test starts moto)")
needs_cargo_lambda = pytest.mark.skipif(not CARGO_LAMBDA, reason="cargo-lambda is not on PATH")


# --------------------------------------------------------------------------------------------
# the translated template


def translate():
    """The CloudFormation template `sam deploy` would create, code in s3://CODE_BUCKET."""
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    doc = yaml_parse(TEMPLATE.read_text())
    for resource in doc["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = f"s3://{CODE_BUCKET}/{CODE_KEY}"

    class NoManagedPolicies:
        def load(self):
            return {}

    return transform(doc, {}, NoManagedPolicies())


@pytest.fixture(scope="module")
def translated():
    return translate()


def of_type(template, kind):
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def test_function_url_carries_both_public_permissions(translated):
    """A public function URL needs lambda:InvokeFunctionUrl and, since October 2025,
    lambda:InvokeFunction via the URL; the template writes both, so every SAM CLI deploys them.
    The only other permission lets the reconcile schedule's rule invoke the reconcile function."""
    permissions = sorted(
        (r["Properties"] for r in of_type(translated, "AWS::Lambda::Permission").values()),
        key=lambda p: (p["Principal"], p["Action"]),
    )
    assert permissions.pop(-1) == {
        "Action": "lambda:InvokeFunction", "FunctionName": {"Ref": "ReconcileFunction"},
        "Principal": "events.amazonaws.com",
        "SourceArn": {"Fn::GetAtt": ["ReconcileFunctionSweep", "Arn"]}}
    assert permissions == [
        {"Action": "lambda:InvokeFunction", "FunctionName": {"Ref": "ReceiverFunction"},
         "Principal": "*", "InvokedViaFunctionUrl": True},
        {"Action": "lambda:InvokeFunctionUrl", "FunctionName": {"Ref": "ReceiverFunction"},
         "Principal": "*", "FunctionUrlAuthType": "NONE"},
    ]
    (url,) = of_type(translated, "AWS::Lambda::Url").values()
    assert url["Properties"] == {"TargetFunctionArn": {"Ref": "ReceiverFunction"},
                                 "AuthType": "NONE", "InvokeMode": "BUFFERED"}


# --------------------------------------------------------------------------------------------
# moto's copy


def drop_function_url(template):
    """moto's CloudFormation has no AWS::Lambda::Url; the ReceiverUrl output reads it."""
    for name in of_type(template, "AWS::Lambda::Url"):
        del template["Resources"][name]
    del template["Outputs"]["ReceiverUrl"]


def drop_alarms(template):
    """moto's CloudFormation cannot create AWS::CloudWatch::Alarm."""
    for name in of_type(template, "AWS::CloudWatch::Alarm"):
        del template["Resources"][name]


def resolve_visibility_lookup(template):
    """moto answers 500 to Fn::FindInMap keyed by a Number parameter: the lookup is replaced by
    the value it gives for the parameter's default."""
    default = str(template["Parameters"]["FanoutTimeoutSeconds"]["Default"])
    value = template["Mappings"]["FanoutTimeouts"][default]["QueueVisibilityTimeout"]

    def walk(node):
        if isinstance(node, dict):
            if "Fn::FindInMap" in node:
                assert node["Fn::FindInMap"] == [
                    "FanoutTimeouts", {"Ref": "FanoutTimeoutSeconds"}, "QueueVisibilityTimeout"]
                return value
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    template["Resources"] = walk(template["Resources"])


def stringify_number_environment(template):
    """CloudFormation passes a Number parameter to a function's environment as text; moto keeps it
    a JSON number, and then its GetFunction answer is one no AWS SDK can parse (cargo lambda
    deploy fails on it). Each such value becomes an Fn::Sub of the parameter, text in both."""
    numbers = {k for k, p in template["Parameters"].items() if p["Type"] == "Number"}
    for resource in of_type(template, "AWS::Lambda::Function").values():
        variables = resource["Properties"].get("Environment", {}).get("Variables", {})
        for key, value in variables.items():
            if isinstance(value, dict) and value.get("Ref") in numbers:
                variables[key] = {"Fn::Sub": "${%s}" % value["Ref"]}


MOTO_ADJUSTMENTS = [drop_function_url, drop_alarms, resolve_visibility_lookup,
                    stringify_number_environment]


def test_what_moto_cannot_create_is_asserted_on_the_translation(translated):
    # drop_function_url: the URL is public (NONE) on the receiver, and its address is an output.
    (url,) = of_type(translated, "AWS::Lambda::Url").values()
    assert url["Properties"]["AuthType"] == "NONE"
    assert translated["Outputs"]["ReceiverUrl"]["Value"] == {
        "Fn::GetAtt": ["ReceiverFunctionUrl", "FunctionUrl"]}
    # drop_alarms: both DLQs alarm on any message, the events queue on a 5-minute-old one, both
    # functions on any error or throttle, the fanout's metric on any retry it could not queue.
    def subject(props):
        dimensions = props.get("Dimensions") or [{"Value": "(total)"}]
        value = dimensions[0]["Value"]
        return value.get("Fn::GetAtt", [None])[0] or value.get("Ref") if isinstance(value, dict) else value

    alarms = {
        (subject(r["Properties"]), r["Properties"]["MetricName"]): r["Properties"]["Threshold"]
        for r in of_type(translated, "AWS::CloudWatch::Alarm").values()
    }
    assert alarms == {
        ("EventsDlq", "ApproximateNumberOfMessagesVisible"): 0,
        ("DeliveriesDlq", "ApproximateNumberOfMessagesVisible"): 0,
        ("EventsQueue", "ApproximateAgeOfOldestMessage"): 300,
        ("ReceiverFunction", "Errors"): 0,
        ("ReceiverFunction", "Throttles"): 0,
        ("FanoutFunction", "Errors"): 0,
        ("FanoutFunction", "Throttles"): 0,
        ("(total)", "RetrySchedulingFailed"): 0,
        ("(total)", "ReconcileUnrecovered"): 0,
        ("(total)", "ReconcileStopped"): 0,
    }
    # resolve_visibility_lookup: every fanout timeout maps to six times itself.
    for timeout in translated["Parameters"]["FanoutTimeoutSeconds"]["AllowedValues"]:
        row = translated["Mappings"]["FanoutTimeouts"][str(timeout)]
        assert row["QueueVisibilityTimeout"] == 6 * int(timeout)
    # Not an adjustment, but not read back either: moto's CloudFormation does not pass
    # RedriveAllowPolicy on to SQS, nor TimeToLiveSpecification on to DynamoDB, nor
    # PublicAccessBlockConfiguration and LifecycleConfiguration on to S3.
    resources = translated["Resources"]
    for dlq, sources in (("EventsDlq", ["events"]),
                         ("DeliveriesDlq", ["deliveries", "failing-deliveries"])):
        policy = resources[dlq]["Properties"]["RedriveAllowPolicy"]
        assert policy["redrivePermission"] == "byQueue"
        assert policy["sourceQueueArns"] == [{"Fn::Sub": (
            "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${AWS::StackName}-"
            + source)} for source in sources]
    assert resources["Table"]["Properties"]["TimeToLiveSpecification"] == {
        "AttributeName": "expires_at", "Enabled": True}
    # Nor the bodies bucket's public access block (all four on) and lifecycle rule (the bodies
    # expire with the event records); its TLS-only bucket policy is asserted here too.
    bucket = resources["BodiesBucket"]["Properties"]
    (expire,) = [r for r in bucket["LifecycleConfiguration"]["Rules"] if r["Id"] == "expire-bodies"]
    assert (expire["Status"], expire["Prefix"], expire["ExpirationInDays"]) == (
        "Enabled", "bodies/", {"Ref": "EventRetentionDays"})
    assert resources["BodiesBucket"]["Properties"]["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True}
    (deny,) = resources["BodiesBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert (deny["Effect"], deny["Condition"]) == (
        "Deny", {"Bool": {"aws:SecureTransport": "false"}})


@pytest.fixture(scope="module")
def deployed(translated):
    """The stack on moto: name, outputs, and each function's configuration."""
    template = copy.deepcopy(translated)
    for adjust in MOTO_ADJUSTMENTS:
        adjust(template)
    s3 = boto("s3")
    if CODE_BUCKET not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
        s3.create_bucket(Bucket=CODE_BUCKET)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\n")  # replaced by `cargo lambda deploy` in real use
    s3.put_object(Bucket=CODE_BUCKET, Key=CODE_KEY, Body=archive.getvalue())

    name = f"relay-{uuid.uuid4().hex[:8]}"
    cloudformation = boto("cloudformation")
    # `sam deploy` passes samconfig.toml's tags as the stack's tags.
    # Subscribers in these tests listen on loopback: deployed as a user testing against a local
    # subscriber would, with private destinations allowed.
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template),
                                Capabilities=["CAPABILITY_IAM"],
                                Parameters=[{"ParameterKey": "AllowPrivateDestinations",
                                             "ParameterValue": "true"}],
                                Tags=[{"Key": k, "Value": v} for k, v in stack_tags().items()])
    deadline = time.monotonic() + 120
    while True:
        stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        if not stack["StackStatus"].endswith("_IN_PROGRESS") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    events = cloudformation.describe_stack_events(StackName=name)["StackEvents"]
    assert stack["StackStatus"] == "CREATE_COMPLETE", [
        (e["LogicalResourceId"], e["ResourceStatus"], e.get("ResourceStatusReason")) for e in events]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    functions = {
        kind: boto("lambda").get_function_configuration(FunctionName=outputs[key])
        for kind, key in (("receiver", "ReceiverFunctionName"), ("fanout", "FanoutFunctionName"),
                          ("reconcile", "ReconcileFunctionName"))
    }
    return {"name": name, "outputs": outputs, "functions": functions}


def queue_attributes(url):
    return boto("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


def role_statements(function):
    iam = boto("iam")
    role = function["Role"].rsplit("/", 1)[1]
    statements = []
    for policy in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
        if isinstance(document, str):
            # moto hands back a policy that CloudFormation created as Python literal text.
            try:
                document = json.loads(document)
            except json.JSONDecodeError:
                document = ast.literal_eval(document)
        statements += document["Statement"]
    return statements


def as_list(value):
    return value if isinstance(value, list) else [value]


def granted_actions(function):
    return {a for st in role_statements(function) if st["Effect"] == "Allow"
            for a in as_list(st["Action"])}


@needs_moto
def test_stack_reads_back_as_the_template_says(deployed):
    out, functions = deployed["outputs"], deployed["functions"]
    receiver, fanout = functions["receiver"], functions["fanout"]

    # Queues: 14 days everywhere; the three work queues hide a message for 6 x the fanout
    # timeout and dead-letter it after 5 (events) or 10 (both deliveries lanes) receives.
    queues = {key: queue_attributes(out[key]) for key in
              ("EventsQueueUrl", "EventsDlqUrl", "DeliveriesQueueUrl", "DeliveriesDlqUrl",
               "FailingDeliveriesQueueUrl")}
    for attributes in queues.values():
        assert attributes["MessageRetentionPeriod"] == "1209600"
        assert attributes["SqsManagedSseEnabled"] == "true"
    for queue, dlq, receives in (("EventsQueueUrl", "EventsDlqUrl", 5),
                                 ("DeliveriesQueueUrl", "DeliveriesDlqUrl", 10),
                                 ("FailingDeliveriesQueueUrl", "DeliveriesDlqUrl", 10)):
        assert int(queues[queue]["VisibilityTimeout"]) == 6 * fanout["Timeout"]
        redrive = json.loads(queues[queue]["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"] == queues[dlq]["QueueArn"]
        assert int(redrive["maxReceiveCount"]) == receives

    # Functions: timeouts, and the delivery timeouts fit the fanout's.
    assert receiver["Timeout"] == 10 and fanout["Timeout"] == 60
    env = fanout["Environment"]["Variables"]
    assert int(env["RELAY_FIRST_ATTEMPT_TIMEOUT_SECS"]) < int(env["RELAY_DELIVERY_TIMEOUT_SECS"])
    assert int(env["RELAY_DELIVERY_TIMEOUT_SECS"]) <= fanout["Timeout"] - 10
    assert env["RELAY_TABLE"] == receiver["Environment"]["Variables"]["RELAY_TABLE"] == out["TableName"]
    assert receiver["Environment"]["Variables"]["RELAY_EVENTS_QUEUE_URL"] == out["EventsQueueUrl"]
    assert env["RELAY_DELIVERIES_QUEUE_URL"] == out["DeliveriesQueueUrl"]
    assert env["RELAY_DELIVERIES_DLQ_URL"] == out["DeliveriesDlqUrl"]
    assert env["RELAY_FAILING_DELIVERIES_QUEUE_URL"] == out["FailingDeliveriesQueueUrl"]

    # Event source mappings: the three work queues, batches of 10 within 1 s, partial batch
    # responses, each capped in concurrency (the failing lane at its smaller share).
    mappings = boto("lambda").list_event_source_mappings(
        FunctionName=out["FanoutFunctionName"])["EventSourceMappings"]
    by_queue = {m["EventSourceArn"]: m for m in mappings}
    assert set(by_queue) == {queues["EventsQueueUrl"]["QueueArn"],
                             queues["DeliveriesQueueUrl"]["QueueArn"],
                             queues["FailingDeliveriesQueueUrl"]["QueueArn"]}
    for arn, cap in ((queues["EventsQueueUrl"]["QueueArn"], 200),
                     (queues["DeliveriesQueueUrl"]["QueueArn"], 100),
                     (queues["FailingDeliveriesQueueUrl"]["QueueArn"], 20)):
        mapping = by_queue[arn]
        assert mapping["BatchSize"] == 10
        assert mapping["MaximumBatchingWindowInSeconds"] == 1
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["State"] == "Enabled"
        assert mapping.get("ScalingConfig", {}).get("MaximumConcurrency") == cap, mapping

    # The function URL's two public permissions, as Lambda holds them.
    policy = json.loads(boto("lambda").get_policy(FunctionName=out["ReceiverFunctionName"])["Policy"])
    public = sorted((st["Action"], st.get("FunctionUrlAuthType"), st.get("InvokedViaFunctionUrl"))
                    for st in policy["Statement"] if st["Principal"] == "*")
    assert public == [("lambda:InvokeFunction", None, True),
                      ("lambda:InvokeFunctionUrl", "NONE", None)]

    # Roles: no wildcard action or resource, every resource one of the stack's own; the one
    # wildcard is reconcile's credentials, under the stack's own name.
    table_arn = boto("dynamodb").describe_table(TableName=out["TableName"])["Table"]["TableArn"]
    own = {table_arn} | {q["QueueArn"] for q in queues.values()}
    bodies = f"arn:aws:s3:::{out['BodiesBucketName']}/bodies/*"
    account = "123456789012"  # moto's
    credentials = {f"arn:aws:ssm:{REGION}:{account}:parameter/{deployed['name']}/*",
                   f"arn:aws:secretsmanager:{REGION}:{account}:secret:{deployed['name']}/*"}
    for kind, function in functions.items():
        for st in role_statements(function):
            assert all("*" not in a for a in as_list(st["Action"])), (kind, st)
            for resource in as_list(st["Resource"]):
                if kind == "reconcile" and resource in credentials | {f"{table_arn}/index/gsi1"}:
                    continue
                # The objects under bodies/ (one per large event), as S3 names them.
                if kind in BODY_ACTIONS and resource == bodies:
                    assert {a for a in as_list(st["Action"])} == BODY_ACTIONS[kind], (kind, st)
                    continue
                assert resource in own or resource.startswith("arn:aws:logs:"), (kind, st)
                assert "*" not in resource, (kind, st)

    # Reconcile: every hour, a sweep of every source over the last 24 h, never retried.
    reconcile = functions["reconcile"]
    assert reconcile["Timeout"] == 900
    renv = reconcile["Environment"]["Variables"]
    assert renv["RELAY_RECONCILE_LOOKBACK"] == "24h" and renv["RELAY_TABLE"] == out["TableName"]
    assert renv["RELAY_EVENTS_QUEUE_URL"] == out["EventsQueueUrl"]
    events_client = boto("events")
    (rule_name,) = events_client.list_rule_names_by_target(
        TargetArn=reconcile["FunctionArn"])["RuleNames"]
    rule = events_client.describe_rule(Name=rule_name)
    assert (rule["ScheduleExpression"], rule["State"]) == ("rate(60 minutes)", "ENABLED"), rule

    # The bodies bucket: encrypted by default, named to the functions that use it (its public
    # access block and lifecycle rule: asserted on the translation).
    s3 = boto("s3")
    bucket = out["BodiesBucketName"]
    (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert receiver["Environment"]["Variables"]["RELAY_BODIES_BUCKET"] == bucket
    assert env["RELAY_BODIES_BUCKET"] == bucket
    assert renv["RELAY_BODIES_BUCKET"] == bucket

    # The table: keys and the index the code queries.
    table = boto("dynamodb").describe_table(TableName=out["TableName"])["Table"]
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["gsi1"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["DeletionProtectionEnabled"] is True

    # The dashboard: one screen, its relay metrics in the stack's own namespace, each one the
    # functions emit (crates/relay-core/src/domain/metrics.rs).
    body = json.loads(boto("cloudwatch").get_dashboard(DashboardName=out["DashboardName"])["DashboardBody"])
    titles = [w["properties"]["title"] for w in body["widgets"]]
    assert titles == ["Inbound", "Deliveries", "Latency (ms)", "Queues: visible messages",
                      "Queues: delayed and in flight", "Functions: errors, throttles, concurrency"]
    namespace = f"WebhookRelay/{deployed['name']}"
    relay_metrics = {m[1] for w in body["widgets"] for m in w["properties"]["metrics"]
                     if m[0] == namespace}
    emitted = set(re.findall(r'Metric::\w+ => "(\w+)"',
                             (ROOT / "crates/relay-core/src/domain/metrics.rs").read_text()))
    assert relay_metrics and relay_metrics <= emitted, relay_metrics - emitted
    assert fanout["Environment"]["Variables"]["RELAY_METRICS_NAMESPACE"] == namespace
    assert receiver["Environment"]["Variables"]["RELAY_METRICS_NAMESPACE"] == namespace


# --------------------------------------------------------------------------------------------
# the functions, configured as the stack configured them


def relay_stack(relay_bin, stack_name, *args):
    argv = [str(relay_bin), "--aws", "--stack", stack_name, *args, "--json"]
    result = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            env=aws_env(), timeout=120)
    assert result.returncode == 0, f"{' '.join(argv[1:])}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return json.loads(result.stdout) if result.stdout.strip() else None


@pytest.fixture(scope="module")
def function_binaries():
    result = subprocess.run(["cargo", "build", "--quiet", "-p", "receiver", "-p", "fanout",
                             "-p", "reconcile"],
                            cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            timeout=BUILD_TIMEOUT)
    assert result.returncode == 0, f"cargo build failed\n{result.stderr}"


@pytest.fixture
def functions(deployed, function_binaries, tmp_path, request):
    """One `cargo lambda watch` per function, its environment the one the stack gave the
    function; the only changes are the AWS endpoint (the function's CallRecorder in front of
    moto) and, so the test runs in seconds on loopback, a 1 s retry schedule and private
    destinations allowed."""
    started = {}
    for kind, function in deployed["functions"].items():
        recorder = CallRecorder(MOTO)
        variables = dict(function["Environment"]["Variables"])
        variables.update(
            AWS_ENDPOINT_URL=recorder.url, AWS_REGION=REGION, AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing", AWS_EC2_METADATA_DISABLED="true",
            AWS_LAMBDA_LOG_LEVEL="INFO",
        )
        if kind == "fanout":
            variables.update(RELAY_RETRY_SCHEDULE="1s", RELAY_ALLOW_PRIVATE_DESTINATIONS="true")
        env_file = tmp_path / f"{kind}.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in variables.items()))
        started[kind] = (Watch(env_file, tmp_path / f"watch-{kind}.log"), recorder)
    yield started
    failed = getattr(getattr(request.node, "rep_call", None), "failed", False)
    for kind, (watch, recorder) in started.items():
        watch.stop()
        recorder.stop()
        if failed:
            print(f"---- cargo lambda watch ({kind}) ----\n{tail(watch.log_path, 80)}")


def receive_one(queue_url, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = boto("sqs").receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1, VisibilityTimeout=30,
            AttributeNames=["All"]).get("Messages", [])
        if messages:
            return messages[0]
    raise AssertionError(f"no message on {queue_url} within {timeout}s")


def as_sqs_event(message, queue_arn):
    record = dict(json.loads(FANOUT_FIXTURE.read_text())["Records"][0])
    record.update(messageId=message["MessageId"], receiptHandle=message["ReceiptHandle"],
                  body=message["Body"], eventSourceARN=queue_arn)
    record["attributes"] = dict(record["attributes"],
                                ApproximateReceiveCount=message["Attributes"]["ApproximateReceiveCount"])
    return json.dumps({"Records": [record]})


@needs_moto
@needs_cargo_lambda
def test_signed_event_through_the_stack(deployed, functions, relay_bin, sink_factory, sub_secret):
    name, out = deployed["name"], deployed["outputs"]
    receiver, receiver_calls = functions["receiver"]
    fanout, fanout_calls = functions["fanout"]
    events_arn = queue_attributes(out["EventsQueueUrl"])["QueueArn"]
    deliveries_arn = queue_attributes(out["DeliveriesQueueUrl"])["QueueArn"]

    relay_stack(relay_bin, name, "sources", "add", "github", "--provider", "github",
                "--secret", FIXTURE_SECRET)
    sink = sink_factory(secrets=[sub_secret])
    for path in ("ok", "status/410", "status/500"):
        relay_stack(relay_bin, name, "subscriptions", "add", "--source", "github",
                    "--url", f"{sink.url}/{path}/stack", "--secret", sub_secret)
    subs = {s["url"].split("/", 3)[3]: s["id"]
            for s in relay_stack(relay_bin, name, "subscriptions", "list", "--source", "github")}

    # SQS down: the receiver answers 503 and releases its dedup claim, so the provider's retry
    # is accepted once SQS is back.
    receiver_calls.fail("sqs:SendMessage", 10)
    refused = receiver.invoke("receiver", data_file=RECEIVER_FIXTURE, timeout=BUILD_TIMEOUT)
    assert refused["statusCode"] == 503, refused
    assert "dynamodb:DeleteItem" in receiver_calls.actions()
    receiver_calls.clear_failures()
    accepted = receiver.invoke("receiver", data_file=RECEIVER_FIXTURE)
    assert accepted["statusCode"] == 202, accepted
    event_id = json.loads(accepted["body"])["id"]

    # The queued event through the fanout: 200, 410 (the subscription is disabled) and 500 (a
    # retry goes to the deliveries queue).
    message = receive_one(out["EventsQueueUrl"])
    response = fanout.invoke("fanout", data=as_sqs_event(message, events_arn), timeout=BUILD_TIMEOUT)
    assert response == {"batchItemFailures": []}, response
    for path in ("/ok/stack", "/status/410/stack", "/status/500/stack"):
        (got,) = sink.wait_for(path, 1)
        assert got["headers"]["webhook-id"] == event_id
        assert got["verified_with"] == [sub_secret]
    listed = {s["id"]: s for s in relay_stack(relay_bin, name, "subscriptions", "list", "--source", "github")}
    assert listed[subs["status/410/stack"]]["enabled"] is False

    # A retry woken before its time hops: sent again with the queue's maximum delay as a new
    # message (nothing held in flight), not attempted.
    retry = receive_one(out["DeliveriesQueueUrl"])
    task = json.loads(retry["Body"])
    assert (task["kind"], task["attempt"]) == ("delivery", 2)
    early = dict(task, not_before=task["not_before"] + 3_600_000)
    boto("sqs").send_message(QueueUrl=out["DeliveriesQueueUrl"], MessageBody=json.dumps(early))
    early_message = receive_one(out["DeliveriesQueueUrl"])
    response = fanout.invoke("fanout", data=as_sqs_event(early_message, deliveries_arn))
    assert response == {"batchItemFailures": []}, response
    assert len(sink.received("/status/500/stack")) == 1
    depth = queue_attributes(out["DeliveriesQueueUrl"])
    assert depth["ApproximateNumberOfMessagesDelayed"] == "1", depth

    # The real retry, due now: it fails again, the 1 s schedule is spent, it is dead-lettered.
    time.sleep(max(0.0, task["not_before"] / 1000 - time.time()) + 0.1)
    response = fanout.invoke("fanout", data=as_sqs_event(retry, deliveries_arn))
    assert response == {"batchItemFailures": []}, response
    sink.wait_for("/status/500/stack", 2)
    parked = json.loads(receive_one(out["DeliveriesDlqUrl"])["Body"])
    # Parked as the attempt a redrive makes next.
    assert (parked["event"]["id"], parked["attempt"]) == (event_id, 3)

    # What the operator sees through the stack's outputs.
    events = relay_stack(relay_bin, name, "events", "list")
    assert event_id in [e["id"] for e in events["events"]], events
    shown = relay_stack(relay_bin, name, "events", "show", event_id)
    attempts = sorted((a["subscription_id"], a["attempt"], a["outcome"], a["next"]) for a in shown["attempts"])
    print("attempt log:", attempts)
    by_sub = {}
    for sub, attempt, outcome, next_step in attempts:
        by_sub.setdefault(sub, []).append((attempt, outcome, next_step))
    assert by_sub[subs["ok/stack"]] == [(1, "ok", "done")]
    assert by_sub[subs["status/410/stack"]] == [(1, "gone", "disabled")]
    assert by_sub[subs["status/500/stack"]] == [(1, "http_status", "retry_scheduled"),
                                                (2, "http_status", "dead_lettered")]

    # Metrics: both functions wrote EMF lines, valid by the specification, in the stack's
    # namespace, counting what happened above.
    namespace = f"WebhookRelay/{name}"
    emitted = {}
    for kind, (watch, _) in functions.items():
        for line in watch.log_path.read_text(errors="replace").splitlines():
            start = line.find("{")
            if start < 0 or '"_aws"' not in line:
                continue
            doc = json.loads(line[start:])
            assert emf.problems(doc) == [], (kind, line)
            assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == namespace
            for metric in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                value = doc[metric["Name"]]
                emitted[metric["Name"]] = emitted.get(metric["Name"], 0) + (
                    len(value) if isinstance(value, list) else value)
    print("EMF totals:", emitted)
    assert emitted["Accepted"] == 1 and emitted["Refused"] == 1
    assert emitted["Delivered"] == 1 and emitted["Failed"] == 3
    assert emitted["RetriesScheduled"] == 1 and emitted["DeadLettered"] == 1
    assert emitted["DeliveryLatency"] == 4 and emitted["AcceptToDeliver"] == 1

    # Every AWS call each function made is granted to its role, and its role grants nothing the
    # function or the Lambda service does not use.
    for kind, calls in (("receiver", receiver_calls), ("fanout", fanout_calls)):
        granted = granted_actions(deployed["functions"][kind])
        made = calls.actions()
        print(f"{kind}: calls by IAM action {dict(sorted(calls.calls.items()))}")
        assert made <= granted, f"{kind} calls {sorted(made - granted)} without a grant"
        unused = granted - PLATFORM_ACTIONS[kind] - BODY_ACTIONS[kind] - made
        assert not unused, f"{kind} is granted {sorted(unused)} it never calls"
        assert granted & PLATFORM_ACTIONS[kind] == PLATFORM_ACTIONS[kind]


def large_json(size):
    """A JSON body of exactly `size` bytes, its content random."""
    head, tail = '{"action":"opened","blob":"', '"}'
    blob = base64.b64encode(os.urandom(size)).decode()[: size - len(head) - len(tail)]
    body = head + blob + tail
    assert len(body) == size
    return body


def bodies_in(bucket):
    return [o["Key"] for o in boto("s3").list_objects_v2(Bucket=bucket).get("Contents", [])]


@needs_moto
@needs_cargo_lambda
def test_large_body_through_the_stack(deployed, functions, relay_bin, sink_factory, sub_secret):
    """A 5 MB body through the stack's bodies bucket: written by the receiver before its event
    is queued (removed again when the queue write fails: 503, nothing accepted), read by the
    fanout, delivered byte for byte and verified by the sink with the official Standard Webhooks
    library, shown by `relay events show`; each S3 call granted, each S3 grant used."""
    name, out = deployed["name"], deployed["outputs"]
    receiver, receiver_calls = functions["receiver"]
    fanout, fanout_calls = functions["fanout"]
    events_arn = queue_attributes(out["EventsQueueUrl"])["QueueArn"]
    bucket = out["BodiesBucketName"]
    source = f"large{uuid.uuid4().hex[:6]}"
    relay_stack(relay_bin, name, "sources", "add", source, "--provider", "github",
                "--secret", FIXTURE_SECRET)
    sink = sink_factory(secrets=[sub_secret])
    relay_stack(relay_bin, name, "subscriptions", "add", "--source", source,
                "--url", f"{sink.url}/ok/large", "--secret", sub_secret)
    body = large_json(5 * 1024 * 1024)
    delivery = str(uuid.uuid4())
    before = set(bodies_in(bucket))

    # The queue write fails after the object write: 503, the object removed.
    receiver_calls.fail("sqs:SendMessage", 10)
    refused = receiver.invoke("receiver", timeout=BUILD_TIMEOUT, data=json.dumps(
        github_function_url_event(source, FIXTURE_SECRET, body, delivery)))
    assert refused["statusCode"] == 503, refused
    assert BODY_ACTIONS["receiver"] <= receiver_calls.actions(), receiver_calls.calls
    assert set(bodies_in(bucket)) == before
    receiver_calls.clear_failures()

    accepted = receiver.invoke("receiver", data=json.dumps(
        github_function_url_event(source, FIXTURE_SECRET, body, delivery)))
    assert accepted["statusCode"] == 202, accepted
    event_id = json.loads(accepted["body"])["id"]
    assert set(bodies_in(bucket)) - before == {f"bodies/{event_id}"}
    message = receive_one(out["EventsQueueUrl"])
    assert json.loads(message["Body"])["id"] == event_id
    assert len(message["Body"]) < 1024, len(message["Body"])
    response = fanout.invoke("fanout", data=as_sqs_event(message, events_arn), timeout=BUILD_TIMEOUT)
    assert response == {"batchItemFailures": []}, response
    (got,) = sink.wait_for("/ok/large", 1, timeout=60)
    assert got["body"] == body.encode(), (len(got["body"]), len(body))
    assert got["headers"]["webhook-id"] == event_id
    assert got["verified_with"] == [sub_secret]
    Webhook(sub_secret).verify(got["body"].decode(), got["headers"])

    shown = relay_stack(relay_bin, name, "events", "show", event_id)
    assert shown["stored_body"] == {"key": f"bodies/{event_id}", "bytes": len(body),
                                    "sha256": hashlib.sha256(body.encode()).hexdigest()}
    assert shown["body"] == body and shown["body_error"] is None
    assert [(a["outcome"], a["next"]) for a in shown["attempts"]] == [("ok", "done")]

    for kind, calls in (("receiver", receiver_calls), ("fanout", fanout_calls)):
        granted = granted_actions(deployed["functions"][kind])
        made = calls.actions()
        print(f"{kind}: calls by IAM action {dict(sorted(calls.calls.items()))}")
        assert made <= granted, f"{kind} calls {sorted(made - granted)} without a grant"
        assert {a for a in granted if a.startswith("s3:")} == BODY_ACTIONS[kind] <= made


RECONCILE_FIXTURE = ROOT / "events" / "reconcile-scheduled-event.json"


@needs_moto
@needs_cargo_lambda
def test_scheduled_reconcile_recovers_what_was_dropped(deployed, functions, relay_bin, octokit):
    """The stack's reconcile function under the runtime API, invoked with the schedule's event:
    credentials from an SSM SecureString and a Secrets Manager secret under the stack's name,
    the loopback stand-ins of GitHub's and Stripe's APIs (tests/standins/, which cite the API
    reference pages they follow), N events dropped before the receiver, exactly those N
    recovered, nothing on the second run, a plain-text parameter refused, the findings as EMF
    metrics, and every AWS call it made granted to its role."""
    name, out = deployed["name"], deployed["outputs"]
    receiver, _ = functions["receiver"]
    reconcile, reconcile_calls = functions["reconcile"]
    function_url = f"http://127.0.0.1:{receiver.port}/lambda-url/receiver"
    warm = requests.get(f"{function_url}/healthz", timeout=BUILD_TIMEOUT)
    assert warm.status_code == 200, (warm.status_code, warm.text)

    token, key = f"ghp_{uuid.uuid4().hex}", f"sk_test_{uuid.uuid4().hex}"
    boto("ssm").put_parameter(Name=f"/{name}/github-token", Value=token, Type="SecureString")
    boto("ssm").put_parameter(Name=f"/{name}/plain", Value=token, Type="String")
    boto("secretsmanager").create_secret(Name=f"{name}/stripe-key", SecretString=key)

    gh_secret, st_secret = f"gh-{uuid.uuid4().hex}", f"whsec_{uuid.uuid4().hex}"
    relay_stack(relay_bin, name, "sources", "add", "gh", "--provider", "github", "--secret", gh_secret)
    relay_stack(relay_bin, name, "sources", "add", "st", "--provider", "stripe", "--secret", st_secret)
    relay_stack(relay_bin, name, "sources", "add", "plain", "--provider", "github",
                "--secret", gh_secret)
    github = GithubApi(token, "orgs/octo/hooks/7", f"{function_url}/gh", gh_secret, octokit)
    stripe = StripeApi(key, f"{function_url}/st", st_secret)
    try:
        relay_stack(relay_bin, name, "sources", "update", "gh",
                    "--reconcile-credential", f"ssm:/{name}/github-token",
                    "--reconcile-api-url", github.url, "--github-hook", "orgs/octo/hooks/7")
        relay_stack(relay_bin, name, "sources", "update", "st",
                    "--reconcile-credential", f"secretsmanager:{name}/stripe-key",
                    "--reconcile-api-url", stripe.url)
        relay_stack(relay_bin, name, "sources", "update", "plain",
                    "--reconcile-credential", f"ssm:/{name}/plain",
                    "--reconcile-api-url", github.url, "--github-hook", "orgs/octo/hooks/7")
        dropped_gh = [github.send("push", {"ref": f"refs/heads/b{i}"}, drop=i in (1, 2))
                      for i in range(4)][1:3]
        dropped_st = [stripe.send("invoice.paid", {"id": f"in_{i}"}, drop=i in (0, 3, 4))
                      for i in range(5)]
        dropped_st = [dropped_st[0], dropped_st[3], dropped_st[4]]

        first = reconcile.invoke("reconcile", data_file=RECONCILE_FIXTURE, timeout=BUILD_TIMEOUT)
        print("first sweep:", first)
        runs = {run["source"]: run for run in first["runs"]}
        assert set(runs) == {"gh", "st", "plain"}
        assert (runs["gh"]["seen"], runs["gh"]["queued"]) == (4, 2)
        assert sorted(runs["gh"]["recovered"]) == sorted(dropped_gh)
        assert (runs["st"]["seen"], runs["st"]["queued"]) == (5, 2)
        assert sorted(runs["st"]["recovered"]) == sorted(dropped_st)
        assert "not a SecureString" in runs["plain"]["stopped"], runs["plain"]
        assert token not in json.dumps(first) and key not in json.dumps(first)
        assert (first["unrecovered"], first["stopped"]) == (0, 1)
        wait_until(lambda: len(github.redeliveries) == 2, timeout=60, message="2 redeliveries")
        assert [status for _, status in github.redeliveries] == [202, 202]

        second = reconcile.invoke("reconcile", data_file=RECONCILE_FIXTURE)
        print("second sweep:", second)
        again = {run["source"]: run for run in second["runs"]}
        assert (again["gh"]["seen"], again["gh"]["queued"], again["gh"]["recovered"]) == (4, 4, [])
        assert (again["st"]["seen"], again["st"]["queued"], again["st"]["recovered"]) == (5, 5, [])
    finally:
        github.close()
        stripe.close()
        # What this test queued is not consumed here; moto's own event source mapping would
        # try it and dead-letter it, which later tests would see.
        boto("sqs").purge_queue(QueueUrl=out["EventsQueueUrl"])

    # The findings as EMF metrics in the stack's namespace, per source and in total.
    totals = {}
    log = reconcile.log_path.read_text(errors="replace")
    assert token not in log and key not in log
    for line in log.splitlines():
        start = line.find("{")
        if start < 0 or '"_aws"' not in line or "Reconcile" not in line:
            continue
        doc = json.loads(line[start:])
        assert emf.problems(doc) == [], line
        assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == f"WebhookRelay/{name}"
        for metric in ("ReconcileMissing", "ReconcileRecovered", "ReconcileUnrecovered",
                       "ReconcileStopped"):
            totals[(doc["Source"], metric)] = totals.get((doc["Source"], metric), 0) + doc[metric]
    print("reconcile EMF totals:", totals)
    assert totals[("gh", "ReconcileRecovered")] == 2 and totals[("st", "ReconcileRecovered")] == 3
    assert totals[("gh", "ReconcileUnrecovered")] == totals[("st", "ReconcileUnrecovered")] == 0
    assert totals[("plain", "ReconcileStopped")] == 2

    granted = granted_actions(deployed["functions"]["reconcile"])
    made = reconcile_calls.actions()
    print(f"reconcile: calls by IAM action {dict(sorted(reconcile_calls.calls.items()))}")
    assert {"ssm:GetParameter", "secretsmanager:GetSecretValue", "sqs:SendMessage"} <= made
    assert made <= granted, f"reconcile calls {sorted(made - granted)} without a grant"


def stack_tags():
    """The tags `sam deploy` gives the stack: samconfig.toml's `tags`, space-separated
    key=value pairs (values may be quoted), as SAM CLI reads them."""
    config = tomllib.loads(SAMCONFIG.read_text())
    text = config["default"]["deploy"]["parameters"]["tags"]
    return dict(pair.split("=", 1) for pair in shlex.split(text))


# Resource types AWS gives no tags at all (their CloudFormation schemas say `taggable: false`).
UNTAGGABLE = {"AWS::Lambda::Permission", "AWS::Lambda::Url", "AWS::Lambda::EventInvokeConfig",
              "AWS::SNS::Subscription", "AWS::S3::BucketPolicy"}


def test_stack_tags_reach_every_taggable_resource(translated):
    """Tags are stack tags (README, Deploy): CloudFormation applies them to every resource whose
    type its resource schema declares taggable. Every type the template creates is one of those
    or one AWS cannot tag, and no resource sets a tag of its own that would override them."""
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    tags = stack_tags()
    assert tags.get("app") == "webhook-relay", tags
    types = {r["Type"] for r in translated["Resources"].values()}
    taggable = {
        kind for kind in types
        if PROVIDER_SCHEMA_MANAGER.get_resource_schema(REGION, kind).schema
        .get("tagging", {}).get("taggable", False)
    }
    assert types - taggable == UNTAGGABLE & types, sorted(types - taggable)
    assert taggable == {
        "AWS::SQS::Queue", "AWS::DynamoDB::Table", "AWS::Lambda::Function",
        "AWS::Lambda::EventSourceMapping", "AWS::IAM::Role", "AWS::Logs::LogGroup",
        "AWS::SNS::Topic", "AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard",
        "AWS::Events::Rule", "AWS::S3::Bucket",
    }, "samconfig.toml names the taggable types; keep it in step"
    for name, resource in translated["Resources"].items():
        own = resource.get("Properties", {}).get("Tags", [])
        keys = set(own) if isinstance(own, dict) else {t["Key"] for t in own}
        assert not keys & set(tags), (name, keys & set(tags))


@needs_moto
def test_stack_on_moto_carries_the_stack_tags(deployed):
    """moto keeps the stack's tags (it passes them on to EC2 resources only, which this stack
    has none of, so the resources' own tags are asserted above from their schemas)."""
    stack = boto("cloudformation").describe_stacks(StackName=deployed["name"])["Stacks"][0]
    assert {t["Key"]: t["Value"] for t in stack.get("Tags", [])} == stack_tags()


@needs_moto
def test_status_reads_the_stacks_queues_and_metrics_namespace(deployed, relay_bin):
    """`relay --aws --stack NAME status` finds the queues from the outputs and the last hour's
    counts in the namespace the template gives the functions (`WebhookRelay/<stack>`)."""
    import datetime

    namespace = f"WebhookRelay/{deployed['name']}"
    boto("cloudwatch").put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": name, "Value": value, "Unit": "Count",
         "Timestamp": datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=3)}
        for name, value in (("Accepted", 5), ("Delivered", 4), ("Failed", 1))])
    dlq = deployed["outputs"]["EventsDlqUrl"]
    # Events earlier tests left to moto's event source mapping may have been dead-lettered.
    while stale := boto("sqs").receive_message(QueueUrl=dlq, MaxNumberOfMessages=10,
                                               VisibilityTimeout=300).get("Messages", []):
        for message in stale:
            boto("sqs").delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])
    boto("sqs").send_message(QueueUrl=dlq, MessageBody="{}")
    try:
        status = relay_stack(relay_bin, deployed["name"], "status")
    finally:
        boto("sqs").purge_queue(QueueUrl=dlq)
    assert status["last_hour"] == {"accepted": 5, "delivered": 4, "failed": 1}
    assert status["queues"]["events-dlq"]["visible"] == 1
    assert set(status["queues"]) == {
        "events", "events-dlq", "deliveries", "deliveries-dlq", "failing-deliveries"
    }


def test_teardown_keeps_what_is_undelivered(translated):
    resources = translated["Resources"]
    for name in ("Table", "EventsDlq", "DeliveriesDlq", "BodiesBucket"):
        assert resources[name]["DeletionPolicy"] == "Retain", name
        assert resources[name]["UpdateReplacePolicy"] == "Retain", name
    assert resources["Table"]["Properties"]["DeletionProtectionEnabled"] is True
    for name in ("EventsQueue", "DeliveriesQueue", "FailingDeliveriesQueue"):
        assert resources[name]["DeletionPolicy"] == "Delete", name


@needs_moto
@needs_cargo_lambda
def test_cargo_lambda_deploy_replaces_the_code_of_a_stack_function(deployed, function_binaries):
    """README: `cargo lambda deploy --binary-name receiver <ReceiverFunctionName>` replaces one
    function's code in a deployed stack. Here the binary is the debug build already made (the
    README builds `--release --arm64`, which only changes what is uploaded), found by path."""
    name = deployed["outputs"]["ReceiverFunctionName"]
    before = boto("lambda").get_function_configuration(FunctionName=name)
    result = subprocess.run(
        [CARGO_LAMBDA, "lambda", "deploy", "--endpoint-url", MOTO, "--region", REGION,
         "--binary-path", str(ROOT / "target" / "debug" / "receiver"), "--output-format", "json",
         name],
        cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=aws_env(),
        timeout=300)
    assert result.returncode == 0, f"stdout: {result.stdout}\nstderr: {result.stderr}"
    # Progress lines come first on stdout; the JSON answer ends it.
    deployed_arn = json.loads(result.stdout[result.stdout.index("{"):])["function_arn"]
    assert deployed_arn.split(":")[6] == name, deployed_arn
    after = boto("lambda").get_function_configuration(FunctionName=name)
    assert after["CodeSha256"] != before["CodeSha256"]
    assert after["CodeSize"] > 1_000_000  # the relay's binary, not the stack's placeholder
    assert after["Environment"] == before["Environment"]
