"""The quickstart through `relay dev`: a GitHub source and a Standard Webhooks source, signed
inbound requests, and what the subscriber receives (DESIGN: outbound delivery contract)."""

import json
import os
import time

from conftest import (
    accepted_id,
    add_github_source,
    add_subscription,
    http,
    send_github,
    standard_request,
    standard_signature_bytes,
    new_secret,
)

# Source secrets need at least 16 characters.
GITHUB_SECRET = "gh-test-secret-0123456789"
from standardwebhooks.webhooks import Webhook


def test_healthz(dev):
    response = http.get(f"{dev.url}/healthz", timeout=5)
    assert response.status_code == 200
    # relay dev says at start that it allows private destinations (the Lambdas do not).
    assert "private" in dev.log_path.read_text()


def test_quickstart_github_to_subscriber(dev, sink, sub_secret):
    secret = "quickstart-github-S3cret"
    out = dev.cli("sources", "add", "github", "--provider", "github", "--secret", secret)
    assert out["name"] == "github" and out["provider"] == "github"
    assert secret not in json.dumps(out)  # only a count is printed

    sub = add_subscription(dev, "github", f"{sink.url}/ok/a", secret=sub_secret)
    assert sub["id"].startswith("sub_") and sub["secret"] == sub_secret
    assert sub["enabled"] is True

    body = json.dumps({"action": "opened", "issue": {"number": 1, "title": "héllo"}}).encode()
    content_type = "application/json; charset=utf-8"
    response, body, _ = send_github(dev, secret, body, event="issues", content_type=content_type)
    assert response.status_code == 202, response.text
    event_id = response.json()["id"]
    assert set(response.json()) == {"id"}

    [got] = sink.wait_for("/ok/a", 1)
    headers = got["headers"]
    assert got["body"] == body
    assert headers["content-type"] == content_type
    assert headers["webhook-id"] == event_id
    assert headers["x-relay-source"] == "github"
    assert headers["x-relay-event-type"] == "issues.opened"
    assert headers["x-relay-attempt"] == "1"
    assert "relay" in headers["user-agent"].lower()
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 300
    assert got["verified_with"] == [sub_secret]
    Webhook(sub_secret).verify(got["body"], headers)  # the official library, in the test too

    [attempt] = dev.wait_attempts(event_id, lambda a: len(a) == 1)
    shown = dev.event(event_id)
    assert shown["source"] == "github" and shown["type"] == "issues.opened"
    assert shown["content_type"] == content_type
    assert attempt["outcome"] == "ok" and attempt["status"] == 200 and attempt["next"] == "done"
    assert attempt["subscription_id"] == sub["id"]


def test_generated_secret_is_printed_and_signs(dev, sink):
    add_github_source(dev, secret=GITHUB_SECRET)
    text = dev.cli("subscriptions", "add", "--source", "github", "--url", f"{sink.url}/ok/g",
                   json=False).stdout
    # People get the id and the secret on stdout, without --json.
    [sub] = dev.cli("subscriptions", "list")
    assert sub["id"] in text
    secret = next(word for word in text.split() if word.startswith("whsec_"))
    response, body, _ = send_github(dev, GITHUB_SECRET)
    event_id = accepted_id(response)
    [got] = sink.wait_for("/ok/g", 1)
    assert got["headers"]["webhook-id"] == event_id
    Webhook(secret).verify(got["body"], got["headers"])


def test_binary_body_arrives_byte_identical(dev, sink, sub_secret):
    add_github_source(dev, secret=GITHUB_SECRET)
    add_subscription(dev, "github", f"{sink.url}/ok/bin", secret=sub_secret)
    body = bytes(range(256)) + b"\xff\xfe\x00\x80" + os.urandom(4096)
    try:
        body.decode()
        raise AssertionError("the body must not be UTF-8")
    except UnicodeDecodeError:
        pass
    response, _, _ = send_github(dev, GITHUB_SECRET, body, event="push",
                                 content_type="application/octet-stream")
    event_id = accepted_id(response)
    [got] = sink.wait_for("/ok/bin", 1)
    assert got["body"] == body
    assert got["headers"]["content-type"] == "application/octet-stream"
    assert got["headers"]["x-relay-event-type"] == "push"
    # The library takes text only, so check the signature over the raw bytes here.
    headers = got["headers"]
    expected = standard_signature_bytes(sub_secret, event_id, headers["webhook-timestamp"], body)
    assert expected in headers["webhook-signature"].split(" ")


def test_body_at_the_inline_limit_is_accepted(dev, sink, sub_secret):
    """256 KiB, the largest body carried inside the queue messages (tests/test_dev_large_bodies.py
    has the larger ones, up to the 6 MB limit)."""
    add_github_source(dev, secret=GITHUB_SECRET)
    add_subscription(dev, "github", f"{sink.url}/ok/big", secret=sub_secret)
    body = b"x" * (256 * 1024)
    response, _, _ = send_github(dev, GITHUB_SECRET, body, event="push", content_type="text/plain")
    event_id = accepted_id(response)
    [got] = sink.wait_for("/ok/big", 1)
    assert got["body"] == body and got["headers"]["webhook-id"] == event_id
    assert got["verified_with"] == [sub_secret]


def test_standard_webhooks_source(dev, sink, sub_secret):
    inbound_secret = new_secret(24)
    out = dev.cli("sources", "add", "std", "--provider", "standard", "--secret", inbound_secret)
    assert out["provider"] == "standard"
    add_subscription(dev, "std", f"{sink.url}/ok/std", secret=sub_secret)

    body = json.dumps({"type": "invoice.paid", "data": {"amount": 42}})
    headers = standard_request(inbound_secret, body)
    response = dev.post("/std", body.encode(), headers)
    event_id = accepted_id(response)
    [got] = sink.wait_for("/ok/std", 1)
    assert got["body"] == body.encode()
    assert got["headers"]["x-relay-event-type"] == "invoice.paid"
    assert got["headers"]["x-relay-source"] == "std"
    assert got["headers"]["webhook-id"] == event_id
    assert got["verified_with"] == [sub_secret]

    # The sender's webhook-id is its delivery id: the same message again is a duplicate.
    again = dev.post_copy("/std", body.encode(), headers)
    assert again.status_code == 200, again.text
    assert again.json() == {"id": event_id, "duplicate": True}
