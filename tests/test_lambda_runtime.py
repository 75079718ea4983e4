"""The two Lambda binaries under the Lambda runtime API, with `cargo lambda watch` as the
emulator and moto as SQS and DynamoDB.

The table and queues are made with boto3 in the template's shape, the source and subscription
with `relay --aws`, and the functions are invoked with `cargo lambda invoke` and the fixtures in
events/, as a developer would (events/README.md). Skipped when MOTO_ENDPOINT is unset or
cargo-lambda is missing. Everything stays on loopback.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import ROOT, free_port, tail, wait_until

MOTO = os.environ.get("MOTO_ENDPOINT", "").strip()
CARGO_LAMBDA = shutil.which("cargo-lambda")
REGION = "us-east-1"
RETENTION = "1209600"
FIXTURE_SECRET = "fixture-github-secret"  # events/README.md
RECEIVER_FIXTURE = ROOT / "events" / "receiver-github-push.json"
FANOUT_FIXTURE = ROOT / "events" / "fanout-sqs-event.json"
# Building the functions' debug binaries is cheap when `cargo build` already ran; the shared
# target dir may also be locked by another build meanwhile.
FIRST_INVOKE_TIMEOUT = 900

pytestmark = [
    pytest.mark.skipif(not MOTO, reason="MOTO_ENDPOINT is not set (scripts/test starts moto)"),
    pytest.mark.skipif(not CARGO_LAMBDA, reason="cargo-lambda is not on PATH (pip install cargo-lambda)"),
]


def aws_env():
    """Environment for everything that talks to moto: endpoint, region, dummy credentials."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(
        AWS_ENDPOINT_URL=MOTO,
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_EC2_METADATA_DISABLED="true",
    )
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_SESSION_TOKEN", None)
    return env


def boto(service):
    import boto3

    return boto3.client(
        service,
        endpoint_url=MOTO,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def stack():
    """A table and four queues in the shape of infra/template.yaml (defaults)."""
    name = f"lrt-{uuid.uuid4().hex[:10]}"
    ddb = boto("dynamodb")
    ddb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "gsi1pk", "gsi1sk")
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "gsi1",
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {
                    "ProjectionType": "INCLUDE",
                    "NonKeyAttributes": ["doc", "source", "event_type", "body_bytes"],
                },
            }
        ],
    )
    ddb.get_waiter("table_exists").wait(TableName=name)
    ddb.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
    )
    sqs = boto("sqs")

    def queue(suffix, dlq_url=None, max_receive=None):
        attributes = {
            "MessageRetentionPeriod": RETENTION,
            "MaximumMessageSize": "1048576",
            "VisibilityTimeout": "360",
        }
        if dlq_url:
            arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": arn, "maxReceiveCount": str(max_receive)}
            )
        return sqs.create_queue(QueueName=f"{name}-{suffix}", Attributes=attributes)["QueueUrl"]

    events_dlq = queue("events-dlq")
    deliveries_dlq = queue("deliveries-dlq")
    return {
        "table": name,
        "events": queue("events", events_dlq, 5),
        "events_dlq": events_dlq,
        "deliveries": queue("deliveries", deliveries_dlq, 10),
        "deliveries_dlq": deliveries_dlq,
    }


def relay_aws(relay_bin, stack, *args):
    """`relay --aws --table T --events-queue-url U --deliveries-queue-url U2 ARGS --json`."""
    argv = [
        str(relay_bin), "--aws",
        "--table", stack["table"],
        "--events-queue-url", stack["events"],
        "--deliveries-queue-url", stack["deliveries"],
        *args, "--json",
    ]
    result = subprocess.run(
        argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=aws_env(), timeout=120
    )
    assert result.returncode == 0, f"{' '.join(argv[1:])}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return json.loads(result.stdout)


class Watch:
    """`cargo lambda watch` in its own process group, logging outside the work tree (it rebuilds
    on changes in the tree; --ignore-changes keeps other people's edits from restarting it)."""

    def __init__(self, env_file, log_path):
        self.port = free_port()
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [
                CARGO_LAMBDA, "lambda", "watch",
                "--invoke-address", "127.0.0.1",
                "--invoke-port", str(self.port),
                "--ignore-changes",
                "--env-file", str(env_file),
            ],
            cwd=ROOT, env=aws_env(), stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_until(self._listening, timeout=120, interval=0.2,
                   message=f"cargo lambda watch on port {self.port}")

    def _listening(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"cargo lambda watch exited {self.proc.returncode}\n{tail(self.log_path)}")
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def invoke(self, function, data_file=None, data=None, timeout=120):
        """`cargo lambda invoke FUNCTION`; returns the function's JSON response."""
        argv = [CARGO_LAMBDA, "lambda", "invoke", function,
                "--invoke-address", "127.0.0.1", "--invoke-port", str(self.port),
                "--output-format", "json"]
        if data_file is not None:
            argv += ["--data-file", str(data_file)]
        if data is not None:
            argv += ["--data-ascii", data]
        result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, env=aws_env(), timeout=timeout)
        assert result.returncode == 0, (
            f"cargo lambda invoke {function} exited {result.returncode}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}\n---- watch log ----\n{tail(self.log_path)}"
        )
        return json.loads(result.stdout)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(15)
        self._log.close()


@pytest.fixture(scope="module")
def function_binaries():
    """Builds both functions first (a no-op when `cargo build` already did), so that watch's own
    `cargo run` only starts them and a build failure shows here, not as an invoke error."""
    started = time.monotonic()
    result = subprocess.run(
        ["cargo", "build", "--quiet", "-p", "receiver", "-p", "fanout"],
        cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=FIRST_INVOKE_TIMEOUT,
    )
    assert result.returncode == 0, f"cargo build failed\n{result.stderr}"
    print(f"receiver and fanout built in {time.monotonic() - started:.1f}s")


@pytest.fixture
def watch(stack, function_binaries, tmp_path, request):
    env_file = tmp_path / "functions.env"
    variables = {
        "RELAY_TABLE": stack["table"],
        "RELAY_EVENTS_QUEUE_URL": stack["events"],
        "RELAY_DELIVERIES_QUEUE_URL": stack["deliveries"],
        "RELAY_DELIVERIES_DLQ_URL": stack["deliveries_dlq"],
        "RELAY_RETRY_SCHEDULE": "1s",
        "RELAY_ALLOW_PRIVATE_DESTINATIONS": "true",
        "RELAY_DELIVERY_TIMEOUT_SECS": "5",
        "AWS_ENDPOINT_URL": MOTO,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_LAMBDA_LOG_LEVEL": "INFO",
    }
    env_file.write_text("".join(f"{k}={v}\n" for k, v in variables.items()))
    started = time.monotonic()
    w = Watch(env_file, tmp_path / "cargo-lambda-watch.log")
    print(f"cargo lambda watch listening after {time.monotonic() - started:.1f}s")
    yield w
    w.stop()
    if getattr(getattr(request.node, "rep_call", None), "failed", False):
        print(f"---- cargo lambda watch log ----\n{tail(w.log_path, 120)}")


def receive_all(queue_url, wait=1):
    messages = boto("sqs").receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait,
        VisibilityTimeout=30, AttributeNames=["All"],
    ).get("Messages", [])
    return messages


def test_receiver_and_fanout_under_the_runtime_api(stack, relay_bin, watch, sink_factory, sub_secret):
    """Fixtures in, through the runtime API, to a loopback sink; then what an operator sees
    and does with `relay --aws`: events show/list, replay (next attempt, same webhook-id) and
    redrive."""
    relay_aws(relay_bin, stack, "sources", "add", "github", "--provider", "github",
              "--secret", FIXTURE_SECRET)
    sink = sink_factory(secrets=[sub_secret])
    relay_aws(relay_bin, stack, "subscriptions", "add", "--source", "github",
              "--url", f"{sink.url}/ok/lambda", "--secret", sub_secret)

    # The receiver fixture (a function URL request, payload 2.0) -> 202 and an event queued.
    started = time.monotonic()
    first = watch.invoke("receiver", data_file=RECEIVER_FIXTURE, timeout=FIRST_INVOKE_TIMEOUT)
    print(f"first receiver invocation (cold start) took {time.monotonic() - started:.1f}s")
    assert first["statusCode"] == 202, first
    event_id = json.loads(first["body"])["id"]
    assert event_id.startswith("evt_")

    messages = receive_all(stack["events"])
    assert len(messages) == 1, messages
    envelope = json.loads(messages[0]["Body"])
    fixture = json.loads(RECEIVER_FIXTURE.read_text())
    assert envelope["kind"] == "event"
    assert envelope["id"] == event_id
    assert envelope["source"] == "github"
    assert envelope["type"] == "push"
    assert envelope["body"] == fixture["body"]

    # The same delivery id again -> 200 duplicate with the first id, nothing more queued.
    second = watch.invoke("receiver", data_file=RECEIVER_FIXTURE)
    assert second["statusCode"] == 200, second
    assert json.loads(second["body"]) == {"id": event_id, "duplicate": True}
    assert receive_all(stack["events"], wait=0) == []

    # The fanout fixture (an SQS event from the events queue) -> delivered, no failures.
    started = time.monotonic()
    response = watch.invoke("fanout", data_file=FANOUT_FIXTURE, timeout=FIRST_INVOKE_TIMEOUT)
    print(f"first fanout invocation (cold start) took {time.monotonic() - started:.1f}s")
    assert response == {"batchItemFailures": []}, response
    got = sink.wait_for("/ok/lambda", 1)
    assert got[0]["body"] == b'{"ref":"refs/heads/main"}'
    assert got[0]["headers"]["webhook-id"] == "evt_0192f0c0a0b07c3e8d1e2f3a4b5c6d7e"
    assert got[0]["headers"]["x-relay-attempt"] == "1"
    assert got[0]["verified_with"] == [sub_secret]

    # The message the receiver really queued, handed over the same way.
    record = dict(json.loads(FANOUT_FIXTURE.read_text())["Records"][0])
    record.update(
        messageId=messages[0]["MessageId"],
        receiptHandle=messages[0]["ReceiptHandle"],
        body=messages[0]["Body"],
        eventSourceARN=f"arn:aws:sqs:{REGION}:123456789012:{stack['table']}-events",
    )
    response = watch.invoke("fanout", data=json.dumps({"Records": [record]}))
    assert response == {"batchItemFailures": []}, response
    got = sink.wait_for("/ok/lambda", 2)
    assert got[1]["body"] == fixture["body"].encode()
    assert got[1]["headers"]["webhook-id"] == event_id
    assert got[1]["verified_with"] == [sub_secret]

    # The operator's view of the same run, through `relay --aws`.
    subs = relay_aws(relay_bin, stack, "subscriptions", "list", "--source", "github")
    assert [s["url"] for s in subs] == [f"{sink.url}/ok/lambda"]
    sub_id = subs[0]["id"]
    shown = relay_aws(relay_bin, stack, "events", "show", event_id)
    assert shown["id"] == event_id and shown["body"] == fixture["body"]
    assert [(a["attempt"], a["outcome"], a["next"]) for a in shown["attempts"]] == [(1, "ok", "done")]
    listed = relay_aws(relay_bin, stack, "events", "list")["events"]
    assert event_id in [e["id"] for e in listed], listed

    # Replay queues the next attempt (2) on the deliveries queue; the fanout delivers it with the
    # same webhook-id.
    replayed = relay_aws(relay_bin, stack, "replay", event_id)
    assert replayed == {"event": event_id, "queued": [{"subscription": sub_id, "attempt": 2}]}
    queued = receive_all(stack["deliveries"])
    assert len(queued) == 1, queued
    task = json.loads(queued[0]["Body"])
    assert (task["kind"], task["event"]["id"], task["attempt"]) == ("delivery", event_id, 2)

    # A parked copy in the deliveries DLQ comes back with `relay redrive`.
    boto("sqs").send_message(QueueUrl=stack["deliveries_dlq"], MessageBody=queued[0]["Body"])
    assert relay_aws(relay_bin, stack, "redrive", "--queue", "deliveries") == {"deliveries": 1}
    redriven = receive_all(stack["deliveries"])
    assert [m["Body"] for m in redriven] == [queued[0]["Body"]]

    record.update(
        messageId=redriven[0]["MessageId"],
        receiptHandle=redriven[0]["ReceiptHandle"],
        body=redriven[0]["Body"],
        eventSourceARN=f"arn:aws:sqs:{REGION}:123456789012:{stack['table']}-deliveries",
    )
    response = watch.invoke("fanout", data=json.dumps({"Records": [record]}))
    assert response == {"batchItemFailures": []}, response
    got = sink.wait_for("/ok/lambda", 3)
    assert got[2]["headers"]["webhook-id"] == event_id
    assert got[2]["headers"]["x-relay-attempt"] == "2"
    assert got[2]["body"] == fixture["body"].encode()
    assert got[2]["verified_with"] == [sub_secret]
    shown = relay_aws(relay_bin, stack, "events", "show", event_id)
    assert [(a["attempt"], a["next"]) for a in shown["attempts"]] == [(1, "done"), (2, "done")]
