"""What the tests that run the Lambda binaries share: the moto environment and `cargo lambda
watch` as the runtime API emulator."""

import base64
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import uuid
from pathlib import Path

from conftest import ROOT, free_port, tail, wait_until

MOTO = os.environ.get("MOTO_ENDPOINT", "").strip()
CARGO_LAMBDA = shutil.which("cargo-lambda")
REGION = "us-east-1"


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

    # A service's own endpoint variable wins, as in the SDKs (AWS_ENDPOINT_URL_SQS, ...).
    return boto3.client(
        service,
        endpoint_url=os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}") or MOTO,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


RETENTION = "1209600"
RECEIVER_FIXTURE = ROOT / "events" / "receiver-github-push.json"


def function_url_event(path, body, headers, base64_body=False):
    """A function URL request (payload format 2.0, shaped like events/receiver-github-push.json)
    to `path` with `body` (bytes) and `headers` over the fixture's; base64-encoded as Lambda sends
    bodies it does not take for text."""
    payload = json.loads(RECEIVER_FIXTURE.read_text())
    payload["rawPath"] = path
    payload["requestContext"]["http"]["path"] = path
    payload["body"] = base64.b64encode(body).decode() if base64_body else body.decode()
    payload["isBase64Encoded"] = base64_body
    payload["headers"].update({name.lower(): value for name, value in headers.items()})
    payload["headers"]["content-length"] = str(len(body))
    return payload


def github_function_url_event(source, secret, body, delivery=None):
    """A function URL request of a GitHub delivery to /{source}: `body` (text) signed with
    `secret` in X-Hub-Signature-256."""
    data = body.encode()
    mac = hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()
    return function_url_event(f"/{source}", data, {
        "x-github-delivery": delivery or str(uuid.uuid4()),
        "x-hub-signature-256": f"sha256={mac}",
    })


def create_stack(name, visibility_timeout=360, events_max_receive=5, deliveries_max_receive=10):
    """A table and four queues in the shape of infra/template.yaml (its defaults, except the
    queues' visibility timeout when given); returns the table name and queue URLs."""
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
            "VisibilityTimeout": str(visibility_timeout),
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
        "events": queue("events", events_dlq, events_max_receive),
        "events_dlq": events_dlq,
        "deliveries": queue("deliveries", deliveries_dlq, deliveries_max_receive),
        "deliveries_dlq": deliveries_dlq,
        "failing_deliveries": queue("failing-deliveries", deliveries_dlq, deliveries_max_receive),
    }


class Watch:
    """`cargo lambda watch` in its own process group, logging outside the work tree (it rebuilds
    on changes in the tree; --ignore-changes keeps other people's edits from restarting it)."""

    def __init__(self, env_file, log_path, extra_args=()):
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
                *extra_args,
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
        """`cargo lambda invoke FUNCTION` with the event in `data_file` or `data` (text, passed
        through a file: one argument may not exceed 128 KiB); returns the function's JSON
        response."""
        argv = [CARGO_LAMBDA, "lambda", "invoke", function,
                "--invoke-address", "127.0.0.1", "--invoke-port", str(self.port),
                "--output-format", "json"]
        if data is not None:
            data_file = self.log_path.parent / f"invoke-{function}.json"
            data_file.write_text(data)
        if data_file is not None:
            argv += ["--data-file", str(data_file)]
        result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, env=aws_env(), timeout=timeout)
        assert result.returncode == 0, (
            f"cargo lambda invoke {function} exited {result.returncode}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}\n---- watch log ----\n{tail(self.log_path)}"
        )
        return json.loads(result.stdout)

    def invoke_http(self, function, payload, timeout=60):
        """One invocation through watch's invoke endpoint (the Lambda Invoke API path), without
        a `cargo lambda invoke` process: (HTTP status, response body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("POST", f"/2015-03-31/functions/{function}/invocations",
                         body=json.dumps(payload).encode(),
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(15)
        self._log.close()
