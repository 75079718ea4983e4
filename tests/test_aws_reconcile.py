"""`relay --aws reconcile` on moto: the table and queues in the template's shape (boto3), the
receiver function under the Lambda runtime API (`cargo lambda watch`, its function URL
emulation at `/lambda-url/receiver/...`), and the loopback stand-ins of GitHub's and Stripe's
APIs (tests/standins/, which cite the API reference pages they follow).

As on `relay dev`: N events are dropped on purpose before the receiver, reconcile recovers
exactly those N (GitHub: redelivered, signed, through the function URL; Stripe: ingested from
the API onto the events queue, marked reconciled), and a second run recovers nothing. Skipped
when MOTO_ENDPOINT is unset or cargo-lambda is missing.
"""

import json
import subprocess
import uuid

import pytest

import requests

from conftest import tail, wait_until
from lambda_support import CARGO_LAMBDA, MOTO, aws_env, boto
from standins.github_api import GithubApi
from standins.stripe_api import StripeApi
from test_lambda_runtime import (  # noqa: F401  (fixtures)
    FIRST_INVOKE_TIMEOUT, function_binaries, function_env, stack, start_watch,
)

pytestmark = [
    pytest.mark.skipif(not MOTO, reason="MOTO_ENDPOINT is not set (scripts/test starts moto)"),
    pytest.mark.skipif(not CARGO_LAMBDA, reason="cargo-lambda is not on PATH"),
]

HOOK = "orgs/octo/hooks/7"


def relay(relay_bin, stack, *args, env=None, check=True):
    argv = [str(relay_bin), "--aws", "--table", stack["table"],
            "--events-queue-url", stack["events"],
            "--deliveries-queue-url", stack["deliveries"], *args, "--json"]
    result = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            env={**aws_env(), **(env or {})}, timeout=120)
    if check:
        assert result.returncode == 0, f"{args}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result


def drain_events(queue_url):
    """Takes every message off the events queue (nothing consumes it here); returns the bodies."""
    sqs = boto("sqs")
    bodies = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                  WaitTimeSeconds=1, VisibilityTimeout=60).get("Messages", [])
        if not got:
            return bodies
        for message in got:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture(scope="module")
def receiver_url(stack, function_binaries, tmp_path_factory):
    """The receiver's function URL under `cargo lambda watch`, started once for the module
    and warmed up: its first request waits for watch's own build of the function."""
    watch = start_watch(function_env(stack), tmp_path_factory.mktemp("reconcile-watch"))
    url = f"http://127.0.0.1:{watch.port}/lambda-url/receiver"
    try:
        warm = requests.get(f"{url}/healthz", timeout=FIRST_INVOKE_TIMEOUT)
        assert warm.status_code == 200, (warm.status_code, warm.text, tail(watch.log_path))
        yield url
    finally:
        watch.stop()


def function_url(receiver_url, source):
    return f"{receiver_url}/{source}"


def test_github_on_aws_redelivers_the_dropped_through_the_function_url(
        stack, relay_bin, receiver_url, octokit):
    name = f"gh{uuid.uuid4().hex[:6]}"
    secret = f"gh-{uuid.uuid4().hex}"
    token = f"ghp_{uuid.uuid4().hex}"
    relay(relay_bin, stack, "sources", "add", name, "--provider", "github", "--secret", secret)
    api = GithubApi(token, HOOK, function_url(receiver_url, name), secret, octokit)
    # On AWS the token is an SSM SecureString, read (and decrypted) by `relay --aws reconcile`.
    parameter = f"/relay-test/{name}/github-token"
    boto("ssm").put_parameter(Name=parameter, Value=token, Type="SecureString")
    try:
        relay(relay_bin, stack, "sources", "update", name,
              "--reconcile-credential", f"ssm:{parameter}",
              "--reconcile-api-url", api.url, "--github-hook", HOOK)
        env = {}
        drain_events(stack["events"])
        lost = [api.send("push", {"ref": f"refs/heads/b{i}"}, drop=i in (0, 3)) for i in range(5)]
        lost = [lost[0], lost[3]]
        delivered = drain_events(stack["events"])
        assert len(delivered) == 3, delivered

        dry_run = relay(relay_bin, stack, "reconcile", name, "--dry-run", env=env)
        assert token not in dry_run.stdout + dry_run.stderr
        dry = json.loads(dry_run.stdout)
        print("dry run:", dry)
        assert (dry["seen"], dry["queued"], sorted(dry["missing"])) == (5, 3, sorted(lost))
        assert api.redeliveries == []

        first = json.loads(relay(relay_bin, stack, "reconcile", name, env=env).stdout)
        print("first run:", first)
        assert sorted(first["recovered"]) == sorted(lost)
        wait_until(lambda: len(api.redeliveries) == 2, timeout=60, message="2 redeliveries")
        assert [status for _, status in api.redeliveries] == [202, 202]
        redelivered = drain_events(stack["events"])
        assert len(redelivered) == 2 and all(not e.get("reconciled") for e in redelivered)

        second = json.loads(relay(relay_bin, stack, "reconcile", name, env=env).stdout)
        print("second run:", second)
        assert (second["seen"], second["queued"], second["recovered"]) == (5, 5, [])
        assert drain_events(stack["events"]) == []
    finally:
        api.close()


def test_stripe_on_aws_ingests_the_dropped_marked_reconciled(stack, relay_bin, receiver_url):
    name = f"st{uuid.uuid4().hex[:6]}"
    secret = "whsec_" + uuid.uuid4().hex
    key = f"sk_test_{uuid.uuid4().hex}"
    relay(relay_bin, stack, "sources", "add", name, "--provider", "stripe", "--secret", secret)
    api = StripeApi(key, function_url(receiver_url, name), secret)
    try:
        relay(relay_bin, stack, "sources", "update", name,
              "--reconcile-credential", "env:RELAY_TEST_STRIPE_KEY", "--reconcile-api-url", api.url)
        env = {"RELAY_TEST_STRIPE_KEY": key}
        drain_events(stack["events"])
        sent = [api.send("invoice.paid", {"id": f"in_{i}"}, drop=i in (1, 2, 4)) for i in range(6)]
        lost = {sent[1], sent[2], sent[4]}
        assert len(drain_events(stack["events"])) == 3

        first = json.loads(relay(relay_bin, stack, "reconcile", name, env=env).stdout)
        print("first run:", first)
        assert (first["seen"], first["queued"], set(first["recovered"])) == (6, 3, lost)
        ingested = drain_events(stack["events"])
        assert len(ingested) == 3
        assert {json.loads(e["body"])["id"] for e in ingested} == lost
        assert all(e["reconciled"] and e["type"] == "invoice.paid" for e in ingested)

        second = json.loads(relay(relay_bin, stack, "reconcile", name, env=env).stdout)
        print("second run:", second)
        assert (second["seen"], second["queued"], second["recovered"]) == (6, 6, [])
        assert drain_events(stack["events"]) == []
    finally:
        api.close()
