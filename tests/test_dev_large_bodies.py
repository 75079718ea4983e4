"""Bodies over the inline limit (256 KiB) through `relay dev`: stored once in the data dir
(`<data dir>/bodies/<event id>`), delivered byte for byte and signed like any other (checked by
the official Standard Webhooks library in the sink), replayed from the stored body; above the
limit (6 MB) refused with 413 naming it; a stored body gone before a delivery gives a
`payload_expired` attempt and a dead letter."""

import base64
import hashlib
import json
import os

from standardwebhooks.webhooks import Webhook

from conftest import accepted_id, add_github_source, add_subscription, room, send_github, wait_until

GITHUB_SECRET = "gh-test-secret-0123456789"
INLINE_LIMIT = 256 * 1024
BODY_LIMIT = 6_000_000


def json_body(size):
    """A JSON body of exactly `size` bytes whose content is random (base64 of random bytes)."""
    head, tail = b'{"action":"opened","blob":"', b'"}'
    blob = base64.b64encode(os.urandom(size))[: size - len(head) - len(tail)]
    body = head + blob + tail
    assert len(body) == size
    return body


def stored_path(dev, event_id):
    return dev.data_dir / "bodies" / event_id


def test_a_5_mb_body_is_stored_once_and_delivered_byte_for_byte(dev, sink, sub_secret):
    add_github_source(dev, secret=GITHUB_SECRET)
    add_subscription(dev, "github", f"{sink.url}/ok/large", secret=sub_secret)
    body = json_body(5 * 1024 * 1024)
    response, _, _ = send_github(dev, GITHUB_SECRET, body=body, event="push")
    event_id = accepted_id(response)

    # Kept once in the data dir, as received.
    stored = stored_path(dev, event_id)
    assert stored.read_bytes() == body

    (got,) = sink.wait_for("/ok/large", 1, timeout=room(30))
    assert got["body"] == body, (len(got["body"]), len(body))
    assert hashlib.sha256(got["body"]).hexdigest() == hashlib.sha256(body).hexdigest()
    assert got["headers"]["webhook-id"] == event_id
    # The sink verified the signature with the official library; verify again here, over the
    # exact bytes the subscriber got.
    assert got["verified_with"] == [sub_secret]
    Webhook(sub_secret).verify(got["body"].decode(), got["headers"])
    dev.wait_attempts(event_id, lambda a: [x["outcome"] for x in a] == ["ok"], timeout=room(30))

    # The archive carries the claim check; `events show` reads the body back.
    shown = dev.event(event_id)
    assert shown["stored_body"] == {"key": f"bodies/{event_id}",
                                    "sha256": hashlib.sha256(body).hexdigest(),
                                    "bytes": len(body)}
    assert shown["body"].encode() == body and shown["body_error"] is None
    assert event_id in [e["id"] for e in dev.cli("events", "list")["events"]]

    # Replay reads the stored body again: the same bytes, attempt 2.
    replayed = dev.cli("replay", event_id)
    assert [q["attempt"] for q in replayed["queued"]] == [2]
    first, second = sink.wait_for("/ok/large", 2, timeout=room(30))
    assert second["body"] == body and second["verified_with"] == [sub_secret]
    assert second["headers"]["x-relay-attempt"] == "2"

    # A body at the inline limit still travels inline: nothing stored.
    inline = json_body(INLINE_LIMIT)
    response, _, _ = send_github(dev, GITHUB_SECRET, body=inline, event="push")
    inline_id = accepted_id(response)
    got = sink.wait_for("/ok/large", 3, timeout=room(30))
    assert got[-1]["body"] == inline
    assert not stored_path(dev, inline_id).exists()
    assert dev.event(inline_id)["stored_body"] is None


def test_a_body_over_the_limit_is_refused_naming_it(dev, sink, sub_secret):
    add_github_source(dev, secret=GITHUB_SECRET)
    add_subscription(dev, "github", f"{sink.url}/ok/limit", secret=sub_secret)
    response, _, _ = send_github(dev, GITHUB_SECRET, body=json_body(BODY_LIMIT + 1), event="push")
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert f"limit of {BODY_LIMIT} bytes" in response.json()["error"]
    # At the limit it is accepted.
    body = json_body(BODY_LIMIT)
    response, _, _ = send_github(dev, GITHUB_SECRET, body=body, event="push")
    event_id = accepted_id(response)
    (got,) = sink.wait_for("/ok/limit", 1, timeout=room(30))
    assert got["body"] == body and got["headers"]["webhook-id"] == event_id
    assert [e["id"] for e in dev.cli("events", "list")["events"]] == [event_id]
    assert [p.name for p in (dev.data_dir / "bodies").iterdir()] == [event_id]


def test_a_stored_body_gone_before_delivery_is_dead_lettered_as_payload_expired(dev, sink,
                                                                               sub_secret):
    add_github_source(dev, secret=GITHUB_SECRET)
    sub = add_subscription(dev, "github", f"{sink.url}/ok/expired", secret=sub_secret)["id"]
    body = json_body(INLINE_LIMIT + 1)
    response, _, _ = send_github(dev, GITHUB_SECRET, body=body, event="push")
    event_id = accepted_id(response)
    sink.wait_for("/ok/expired", 1, timeout=room(30))
    dev.wait_attempts(event_id, lambda a: len(a) == 1)

    # The body expires (here: is deleted); a replay then finds it gone.
    stored_path(dev, event_id).unlink()
    replayed = dev.cli("replay", event_id)
    assert replayed["queued"] == [{"subscription": sub, "attempt": 2}]
    attempts = dev.wait_attempts(event_id, lambda a: len(a) == 2, timeout=room(30))
    expired = attempts[-1]
    assert (expired["attempt"], expired["outcome"], expired["next"]) == (
        2, "payload_expired", "dead_lettered"), attempts
    assert "status" not in expired
    # Dead-lettered at once (not retried through the schedule), and nothing more was sent.
    status = wait_until(
        lambda: (lambda s: s if s["queues"]["deliveries-dlq"]["visible"] == 1 else None)(
            dev.cli("status")),
        timeout=room(15), message="the delivery in the DLQ")
    assert status["queues"]["deliveries"]["visible"] + status["queues"]["deliveries"]["delayed"] == 0
    assert len(sink.received("/ok/expired")) == 1
    shown = dev.event(event_id)
    assert "gone" in shown["body_error"], shown["body_error"]

    # A redrive tries again and finds it gone again: a clear outcome, not a crash or a loop.
    assert dev.cli("redrive") == {"events": 0, "deliveries": 1}
    attempts = dev.wait_attempts(event_id, lambda a: len(a) == 3, timeout=room(30))
    assert [a["outcome"] for a in attempts] == ["ok", "payload_expired", "payload_expired"]
    assert len(sink.received("/ok/expired")) == 1



def test_bulk_replay_reads_stored_bodies_for_content_filters(dev, sink, sub_secret):
    """A subscription filtering on the body takes a large event in a bulk replay as the fanout
    took it: the stored body is read back for the filter (the search itself sees no bodies)."""
    add_github_source(dev, secret=GITHUB_SECRET)
    sub = dev.cli("subscriptions", "add", "--source", "github", "--url", f"{sink.url}/ok/filtered",
                  "--secret", sub_secret, "--filter", '{"body":{"action":"opened"}}')["id"]
    large = json_body(INLINE_LIMIT + 1)
    response, _, _ = send_github(dev, GITHUB_SECRET, body=large, event="push")
    large_id = accepted_id(response)
    other = json_body(INLINE_LIMIT + 1).replace(b'"action":"opened"', b'"action":"closed"')
    response, _, _ = send_github(dev, GITHUB_SECRET, body=other, event="push")
    other_id = accepted_id(response)
    (got,) = sink.wait_for("/ok/filtered", 1, timeout=room(30))
    assert got["headers"]["webhook-id"] == large_id
    for event_id in (large_id, other_id):
        assert stored_path(dev, event_id).exists()

    planned = dev.cli("replay", "--subscription", sub, "--since", "1h", "--status", "any",
                      "--dry-run")
    assert planned["matched"] == 1 and planned["event_ids"] == [large_id], planned
