"""The two Lambda binaries under the Lambda runtime API, with `cargo lambda watch` as the
emulator and moto as SQS and DynamoDB.

The table and queues are made with boto3 in the template's shape, the source and subscription
with `relay --aws`, and the functions are invoked with `cargo lambda invoke` and the fixtures in
events/, as a developer would (events/README.md). Skipped when MOTO_ENDPOINT is unset or
cargo-lambda is missing. Everything stays on loopback.
"""

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest

import github_corpus as corpus
from conftest import ROOT, tail
from lambda_support import (CARGO_LAMBDA, MOTO, REGION, Watch, aws_env, boto, create_stack,
                            function_url_event, github_function_url_event)

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


@pytest.fixture(scope="module")
def stack():
    """A table and four queues in the shape of infra/template.yaml (defaults)."""
    return create_stack(f"lrt-{uuid.uuid4().hex[:10]}")


def relay_aws(relay_bin, stack, *args):
    """`relay --aws --table T --events-queue-url U --deliveries-queue-url U2 ARGS --json`."""
    argv = [
        str(relay_bin), "--aws",
        "--table", stack["table"],
        "--events-queue-url", stack["events"],
        "--deliveries-queue-url", stack["deliveries"],
        *args, "--json",
    ]
    # The functions here deliver to a loopback sink (private destinations allowed); without a
    # stack to read that from, the CLI is told the same way the functions are.
    env = {**aws_env(), "RELAY_ALLOW_PRIVATE_DESTINATIONS": "true"}
    result = subprocess.run(
        argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env, timeout=120
    )
    assert result.returncode == 0, f"{' '.join(argv[1:])}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return json.loads(result.stdout)


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


def function_env(stack):
    """The functions' environment, as the template sets it (minus what moto needs)."""
    return {
        "RELAY_TABLE": stack["table"],
        "RELAY_EVENTS_QUEUE_URL": stack["events"],
        "RELAY_DELIVERIES_QUEUE_URL": stack["deliveries"],
        "RELAY_DELIVERIES_DLQ_URL": stack["deliveries_dlq"],
        "RELAY_FAILING_DELIVERIES_QUEUE_URL": stack["failing_deliveries"],
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


def start_watch(env, tmp_path):
    env_file = tmp_path / "functions.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return Watch(env_file, tmp_path / "cargo-lambda-watch.log")


@pytest.fixture
def watch(stack, function_binaries, tmp_path, request):
    started = time.monotonic()
    w = start_watch(function_env(stack), tmp_path)
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


def receiver_request(path, body, headers, base64_body=False):
    """`function_url_event` as the JSON `cargo lambda invoke` takes."""
    return json.dumps(function_url_event(path, body, headers, base64_body))


def fan_out_queued(watch, stack, source, count):
    """Takes the `count` events queued for `source` off the events queue and hands them to the
    fanout in batches of 10, deleting each clean batch, as the event source mapping does."""
    ours = []
    deadline = time.monotonic() + 30
    while len(ours) < count and time.monotonic() < deadline:
        for m in receive_all(stack["events"]):
            if json.loads(m["Body"]).get("source") == source:
                ours.append(m)
    assert len(ours) == count, ours
    template = json.loads(FANOUT_FIXTURE.read_text())["Records"][0]
    sqs = boto("sqs")
    for start in range(0, count, 10):
        batch = ours[start:start + 10]
        records = []
        for m in batch:
            record = dict(template)
            record.update(
                messageId=m["MessageId"], receiptHandle=m["ReceiptHandle"], body=m["Body"],
                eventSourceARN=f"arn:aws:sqs:{REGION}:123456789012:{stack['table']}-events",
            )
            records.append(record)
        response = watch.invoke("fanout", data=json.dumps({"Records": records}),
                                timeout=FIRST_INVOKE_TIMEOUT)
        assert response == {"batchItemFailures": []}, response
        for m in batch:
            sqs.delete_message(QueueUrl=stack["events"], ReceiptHandle=m["ReceiptHandle"])
    return ours


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

    # The same delivery id again -> 200 duplicate with the first id (the fanout has stored the
    # event, which confirms the receiver's claim), nothing more queued.
    second = watch.invoke("receiver", data_file=RECEIVER_FIXTURE)
    assert second["statusCode"] == 200, second
    assert json.loads(second["body"]) == {"id": event_id, "duplicate": True}
    assert receive_all(stack["events"], wait=0) == []

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


LOG_EVENTS = 20
# The functions' log budget per delivered event (receiver and fanout together).
LOG_BYTES_PER_EVENT_TARGET = 400


def function_log_lines(log_path):
    """The JSON log lines the functions wrote (the watch log also holds cargo-lambda's and
    cargo's own text lines)."""
    lines = []
    for raw in Path(log_path).read_bytes().splitlines(keepends=True):
        try:
            parsed = json.loads(raw)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            lines.append((raw, parsed))
    return lines


def test_log_bytes_per_delivered_event(stack, relay_bin, function_binaries, sink_factory, sub_secret, tmp_path, request):
    """Logs as Lambda stores them (AWS_LAMBDA_LOG_FORMAT=JSON, as infra/template.yaml sets):
    N signed events through the receiver and the fanout (batches of 10, as the event source
    mapping sends them); the functions' log bytes divided by N."""
    source = f"logs{uuid.uuid4().hex[:6]}"
    relay_aws(relay_bin, stack, "sources", "add", source, "--provider", "github",
              "--secret", FIXTURE_SECRET)
    sink = sink_factory(secrets=[sub_secret])
    relay_aws(relay_bin, stack, "subscriptions", "add", "--source", source,
              "--url", f"{sink.url}/ok/logs", "--secret", sub_secret)
    env = function_env(stack)
    env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
    watch = start_watch(env, tmp_path)
    try:
        # One warm-up event per function, so cold-start lines are not counted per event.
        def signed(n):
            body = json.dumps({"ref": "refs/heads/main", "n": n, "secret_marker": "body-not-logged"})
            return json.dumps(github_function_url_event(source, FIXTURE_SECRET, body))

        def through(count, offset):
            for n in range(count):
                answer = watch.invoke("receiver", data=signed(offset + n), timeout=FIRST_INVOKE_TIMEOUT)
                assert answer["statusCode"] == 202, answer
            fan_out_queued(watch, stack, source, count)

        through(1, 0)
        sink.wait_for("/ok/logs", 1)
        before = len(function_log_lines(watch.log_path))
        through(LOG_EVENTS, 1)
        sink.wait_for("/ok/logs", 1 + LOG_EVENTS)
        lines = function_log_lines(watch.log_path)[before:]
    finally:
        watch.stop()
    total = sum(len(raw) for raw, _ in lines)
    per_event = total / LOG_EVENTS
    print(f"function log: {len(lines)} lines, {total} bytes for {LOG_EVENTS} delivered events: "
          f"{per_event:.0f} bytes per event")
    for raw, _ in lines[:4]:
        print("  " + raw.decode(errors="replace").rstrip())
    text = b"".join(raw for raw, _ in lines)
    assert b"body-not-logged" not in text, "an event body reached the log"
    assert FIXTURE_SECRET.encode() not in text and sub_secret.encode() not in text, "a secret reached the log"
    assert per_event <= LOG_BYTES_PER_EVENT_TARGET, f"{per_event:.0f} bytes of log per delivered event"


# Corpus examples sent through the receiver function, each in both content types.
CORPUS_SAMPLE = 20


def test_github_corpus_sample_through_the_functions(stack, relay_bin, watch, sink_factory, sub_secret,
                                                    node_modules, octokit):
    """A sample of real GitHub payloads (tests/github_corpus.py), as `json` and as `form`
    (base64-encoded by Lambda, as function URLs pass form bodies), signed by GitHub's
    @octokit/webhooks-methods: each accepted by the receiver, typed as documented, and delivered
    by the fanout byte-identical with its content type and a verified Standard Webhooks
    signature."""
    source = f"corpus{uuid.uuid4().hex[:6]}"
    secret = f"gh-{uuid.uuid4().hex}"
    relay_aws(relay_bin, stack, "sources", "add", source, "--provider", "github", "--secret", secret)
    sink = sink_factory(secrets=[sub_secret])
    relay_aws(relay_bin, stack, "subscriptions", "add", "--source", source,
              "--url", f"{sink.url}/ok/corpus", "--secret", sub_secret)
    pairs = corpus.sample(corpus.examples(node_modules), CORPUS_SAMPLE)
    items = corpus.sign(octokit, secret, corpus.deliveries(pairs))

    answers = []
    for delivery in items:
        request = receiver_request(f"/{source}", delivery.body, delivery.headers(),
                                   base64_body=delivery.kind == "form")
        answer = watch.invoke("receiver", data=request, timeout=FIRST_INVOKE_TIMEOUT)
        status = answer["statusCode"]
        answers.append((status, json.loads(answer["body"])["id"] if status == 202 else answer["body"]))
    accepted = sum(1 for status, _ in answers if status == 202)
    fan_out_queued(watch, stack, source, accepted)
    received = sink.wait_for("/ok/corpus", accepted, timeout=60 + accepted)
    counts, problems = corpus.check_deliveries(items, answers, received, sub_secret)
    print(corpus.summary("receiver function", counts))

    assert not problems, "\n".join(problems)
    for kind in corpus.CONTENT_TYPES:
        c = counts[kind]
        assert c["examples"] == len(pairs) == CORPUS_SAMPLE, c
        assert c["accepted"] == c["typed_right"] == c["byte_identical"] == len(pairs), c
    assert any("." in d.expected_type for d in items) and any("." not in d.expected_type for d in items)
