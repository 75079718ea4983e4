"""Bad inbound requests are answered as DESIGN's HTTP contract says, never echo a secret or the
expected signature, and deliver nothing."""

import hashlib
import hmac
import json
import time

import pytest

from conftest import (
    accepted_id,
    add_subscription,
    github_request,
    http,
    new_secret,
    send_github,
    standard_request,
)

GITHUB_SECRET = "gh-very-secret-value"


@pytest.fixture
def setup(dev, sink, sub_secret):
    dev.cli("sources", "add", "github", "--provider", "github", "--secret", GITHUB_SECRET)
    std_secret = new_secret(24)
    dev.cli("sources", "add", "std", "--provider", "standard", "--secret", std_secret)
    add_subscription(dev, "github", f"{sink.url}/ok/gh", secret=sub_secret)
    add_subscription(dev, "std", f"{sink.url}/ok/std", secret=sub_secret)
    return std_secret


def assert_nothing_delivered(dev, sink):
    """A valid sentinel event goes through; it is the only event stored and the only delivery."""
    response, _, _ = send_github(dev, GITHUB_SECRET, event="push",
                                 body=json.dumps({"sentinel": True}).encode())
    sentinel = accepted_id(response)
    sink.wait_for("/ok/gh", 1)
    dev.wait_attempts(sentinel, lambda a: len(a) == 1)
    assert [e["id"] for e in dev.cli("events", "list")["events"]] == [sentinel]
    got = sink.received("")
    assert [g["headers"]["webhook-id"] for g in got] == [sentinel], got


def assert_no_secret(response, *secrets):
    for secret in secrets:
        assert secret not in response.text


def error_of(response):
    assert response.headers["content-type"].startswith("application/json"), response.headers
    return response.json()["error"]


def test_bad_requests_are_refused_and_deliver_nothing(dev, sink, setup):
    std_secret = setup
    body = json.dumps({"action": "opened", "issue": {"number": 7}}).encode()
    right_digest = hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    std_key = std_secret.removeprefix("whsec_")

    # Wrong signature: signed with another secret.
    response = dev.post("/github", body, github_request("not-the-secret", body))
    assert response.status_code == 401
    assert "signature" in error_of(response)
    assert_no_secret(response, GITHUB_SECRET, right_digest)

    # Tampered body: signed, then changed.
    headers = github_request(GITHUB_SECRET, body)
    response = dev.post("/github", body.replace(b"7", b"8"), headers)
    assert response.status_code == 401
    assert_no_secret(response, GITHUB_SECRET, right_digest)

    # Malformed signature header.
    headers = github_request(GITHUB_SECRET, body, signature="md5=abc")
    response = dev.post("/github", body, headers)
    assert response.status_code == 401
    assert_no_secret(response, GITHUB_SECRET, right_digest)

    # Missing signature header: the message names it.
    headers = github_request(GITHUB_SECRET, body)
    del headers["X-Hub-Signature-256"]
    response = dev.post("/github", body, headers)
    assert response.status_code == 401
    assert "x-hub-signature-256" in error_of(response).lower()

    # Unknown source.
    response = dev.post("/nope", body, github_request(GITHUB_SECRET, body))
    assert response.status_code == 404
    assert_no_secret(response, GITHUB_SECRET)

    # Not POST.
    for method in ("GET", "PUT", "DELETE"):
        response = http.request(method, f"{dev.url}/github", timeout=10)
        assert response.status_code == 405, (method, response.status_code)

    # Over the 6 MB limit (bodies over 256 KiB are accepted: stored in the data dir).
    big = b"x" * (6_000_000 + 1)
    response = dev.post("/github", big, github_request(GITHUB_SECRET, big, content_type="text/plain"))
    assert response.status_code == 413
    assert "limit of 6000000 bytes" in error_of(response)
    assert_no_secret(response, GITHUB_SECRET)

    # Standard Webhooks: a stale timestamp, correctly signed, says how old it is.
    std_body = json.dumps({"type": "invoice.paid"})
    old = int(time.time()) - 900
    response = dev.post("/std", std_body.encode(), standard_request(std_secret, std_body, timestamp=old))
    assert response.status_code == 401
    message = error_of(response)
    assert "old" in message and "s old" in message, message
    age = int(message.split("timestamp ")[1].split(" s old")[0])
    assert 900 <= age < 960, message
    assert_no_secret(response, std_secret, std_key)

    # ...and one from the future.
    response = dev.post("/std", std_body.encode(),
                        standard_request(std_secret, std_body, timestamp=time.time() + 900))
    assert response.status_code == 401
    assert "future" in error_of(response)

    # Standard Webhooks: wrong secret and missing headers.
    response = dev.post("/std", std_body.encode(), standard_request(new_secret(24), std_body))
    assert response.status_code == 401
    assert_no_secret(response, std_secret, std_key)
    headers = standard_request(std_secret, std_body)
    del headers["webhook-signature"]
    response = dev.post("/std", std_body.encode(), headers)
    assert response.status_code == 401
    assert "webhook-signature" in error_of(response)

    assert_nothing_delivered(dev, sink)


def test_malformed_body_of_a_structured_provider_is_400(dev, sink, setup):
    std_secret = setup
    # Signed correctly but not the provider's structure: 400, nothing queued.
    body = json.dumps({"no_type": True})
    response = dev.post("/std", body.encode(), standard_request(std_secret, body))
    assert response.status_code == 400
    assert "type" in error_of(response)
    assert_nothing_delivered(dev, sink)


def test_event_type_that_is_not_a_header_value_is_400_and_nothing_queued(dev, sink, setup):
    """A type with a control character could never be delivered (it travels in the
    x-relay-event-type header), so the receiver refuses it with 400 instead of a 202 whose
    deliveries are all dropped."""
    std_secret = setup
    for body, why in [
        (json.dumps({"type": "a\u0001b"}), "byte 2 of 3"),
        (json.dumps({"type": "t" * 257}), "257 bytes long"),
    ]:
        # Signed with the official library: authentic, so only the type is wrong.
        headers = standard_request(std_secret, body)
        response = dev.post("/std", body.encode(), headers)
        assert response.status_code == 400, (response.status_code, response.text)
        message = error_of(response)
        assert "the event type is not a valid header value" in message and why in message, message
        assert "\u0001" not in response.text and "\\u0001" not in response.text
        assert_no_secret(response, std_secret)
    assert_nothing_delivered(dev, sink)


def test_delivery_id_longer_than_the_relay_keeps_is_400(dev, sink, setup):
    std_secret = setup
    body = json.dumps({"type": "invoice.paid"})
    headers = standard_request(std_secret, body, msg_id="m" * 513)
    response = dev.post("/std", body.encode(), headers)
    assert response.status_code == 400, (response.status_code, response.text)
    assert "delivery id is 513 bytes long" in error_of(response)
    assert_nothing_delivered(dev, sink)
