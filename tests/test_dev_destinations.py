"""Where deliveries may go (SSRF guard), secret rotation, and replay.

The guard is exercised with loopback addresses only: 127.0.0.1, localhost and [::1]."""

import json
import time

import pytest
from standardwebhooks.webhooks import Webhook

from conftest import (accepted_id, add_github_source, add_subscription, room, send_github,
                      wait_until)

# Source secrets need at least 16 characters.
GITHUB_SECRET = "gh-test-secret-0123456789"


def deny_private_destinations(dev, *args):
    """Restarts `dev` on its data dir with private destinations denied."""
    dev.stop()
    dev.args = [*args]
    dev.start()


def test_deny_private_destinations_refuses_loopback(dev, sink, sub_secret):
    add_github_source(dev, secret=GITHUB_SECRET)
    port = sink.port
    urls = (
        f"http://127.0.0.1:{port}/ok/ip",
        f"http://localhost:{port}/ok/name",
        f"http://[::1]:{port}/ok/v6",
    )
    # relay dev allows private destinations by default: these are added.
    subs = {add_subscription(dev, "github", url, secret=sub_secret)["id"]: url for url in urls}
    deny_private_destinations(dev, "--deny-private-destinations")

    # Now `subscriptions add` refuses each, saying which address and which setting.
    for url, says in zip(urls, ("127.0.0.1 is a loopback address",
                                "localhost resolves to ",
                                "::1 is a loopback address")):
        refused = dev.cli("subscriptions", "add", "--source", "github", "--url", url,
                          check=False)
        assert refused.returncode == 1, refused.stderr
        error = json.loads(refused.stderr)["error"]
        assert error["kind"] == "invalid", error
        assert says in error["message"] and "--deny-private-destinations" in error["message"], error
    assert sorted(s["id"] for s in dev.cli("subscriptions", "list")) == sorted(subs)

    # The ones stored before are refused at delivery.
    response, _, _ = send_github(dev, GITHUB_SECRET)
    event_id = accepted_id(response)
    attempts = dev.wait_attempts(event_id, lambda a: len(a) >= len(subs))
    assert {a["subscription_id"] for a in attempts} == set(subs)
    for a in attempts:
        assert a["outcome"] == "refused_destination", (subs[a["subscription_id"]], a)
        assert a["next"] == "dropped", (subs[a["subscription_id"]], a)
        assert a["attempt"] == 1 and "status" not in a
    # Not retried: dropped means no retry message; the attempt log stays at one per subscription
    # and nothing is parked in the DLQ.
    assert len(dev.event(event_id)["attempts"]) == len(subs)
    assert dev.cli("redrive") == {"events": 0, "deliveries": 0}
    assert sink.received("") == []

    # `relay status` lists them, enabled, with the guard's reason.
    def refused_listed():
        listed = {s["id"]: s for s in dev.cli("status")["subscriptions"]}
        return listed if set(listed) == set(subs) else None

    listed = wait_until(refused_listed, timeout=room(15), interval=0.2,
                        message="the refused subscriptions in relay status")
    for sub_id, entry in listed.items():
        assert entry["enabled"] is True and entry["failing_since"] is None, entry
        assert "loopback address" in entry["refused"]["reason"], entry
        assert entry["refused"]["since"] <= time.time(), entry
    text = dev.cli("status", json=False).stdout
    assert f"subscriptions failing, disabled or refused: {len(subs)}" in text
    for sub_id in subs:
        line = next(line for line in text.splitlines() if line.startswith(sub_id))
        assert "deliveries refused since" in line, line


def test_relay_dev_takes_delivery_settings_from_the_environment(dev, sink, sub_secret,
                                                                 monkeypatch):
    add_github_source(dev, secret=GITHUB_SECRET)
    sub = add_subscription(dev, "github", f"{sink.url}/ok/env", secret=sub_secret)
    # The Lambdas' variable, read by relay dev too: loopback refused without the flag.
    monkeypatch.setenv("RELAY_ALLOW_PRIVATE_DESTINATIONS", "false")
    deny_private_destinations(dev)
    refused = dev.cli("subscriptions", "add", "--source", "github", "--url",
                      f"{sink.url}/ok/env2", check=False)
    assert refused.returncode == 1 and "127.0.0.1 is a loopback" in refused.stderr
    response, _, _ = send_github(dev, GITHUB_SECRET)
    event_id = accepted_id(response)
    [attempt] = dev.wait_attempts(event_id, lambda a: len(a) >= 1)
    assert attempt["subscription_id"] == sub["id"]
    assert attempt["outcome"] == "refused_destination", attempt
    assert sink.received("") == []


def test_rotated_secret_signs_with_old_and_new(dev, sink, sub_secret):
    add_github_source(dev, secret=GITHUB_SECRET)
    sub = add_subscription(dev, "github", f"{sink.url}/ok/rot", secret=sub_secret)
    rotated = dev.cli("subscriptions", "rotate-secret", sub["id"], "--keep-old", "24h")
    new = rotated["secret"]
    assert new.startswith("whsec_") and new != sub_secret
    assert rotated["secrets"] == 2

    response, body, _ = send_github(dev, GITHUB_SECRET)
    event_id = accepted_id(response)
    [got] = sink.wait_for("/ok/rot", 1)
    headers = got["headers"]
    assert headers["webhook-id"] == event_id
    entries = headers["webhook-signature"].split(" ")
    assert len(entries) == 2 and all(e.startswith("v1,") for e in entries), entries
    # Both the subscriber that still has the old secret and the one with the new verify it.
    Webhook(sub_secret).verify(got["body"], headers)
    Webhook(new).verify(got["body"], headers)
    assert got["verified_with"] == [sub_secret]  # the sink was started with the old one only
    # And no other secret does.
    with pytest.raises(Exception):
        Webhook("whsec_" + "A" * 32).verify(got["body"], headers)


def test_replay_keeps_the_webhook_id(dev, sink, sub_secret):
    add_github_source(dev, secret=GITHUB_SECRET)
    a = add_subscription(dev, "github", f"{sink.url}/ok/ra", secret=sub_secret)["id"]
    b = add_subscription(dev, "github", f"{sink.url}/ok/rb", secret=sub_secret)["id"]
    response, body, _ = send_github(dev, GITHUB_SECRET)
    event_id = accepted_id(response)
    dev.wait_attempts(event_id, lambda at: len(at) == 2)

    replayed = dev.cli("replay", event_id)
    assert replayed["event"] == event_id
    assert sorted((q["subscription"], q["attempt"]) for q in replayed["queued"]) == sorted(
        [(a, 2), (b, 2)])
    for path in ("/ok/ra", "/ok/rb"):
        got = sink.wait_for(path, 2)
        assert [g["headers"]["x-relay-attempt"] for g in got] == ["1", "2"]
        assert {g["headers"]["webhook-id"] for g in got} == {event_id}
        assert all(g["body"] == body and g["verified_with"] == [sub_secret] for g in got)

    only = dev.cli("replay", event_id, "--subscription", a)
    assert only["queued"] == [{"subscription": a, "attempt": 3}]
    got = sink.wait_for("/ok/ra", 3)
    assert [g["headers"]["x-relay-attempt"] for g in got] == ["1", "2", "3"]
    assert got[-1]["headers"]["webhook-id"] == event_id
    dev.wait_attempts(event_id, lambda at: len(at) == 5)
    assert len(sink.received("/ok/rb")) == 2

    # Replaying an unknown event fails with exit 1 and a JSON error.
    failed = dev.cli("replay", "evt_nope", check=False)
    assert failed.returncode == 1 and "error" in failed.stderr
    # A replay to a disabled subscription is refused, naming the command that enables it.
    dev.cli("subscriptions", "disable", b)
    refused = dev.cli("replay", event_id, "--subscription", b, check=False)
    assert refused.returncode == 1, refused.stderr
    error = json.loads(refused.stderr)["error"]
    assert error["kind"] == "conflict" and f"relay subscriptions enable {b}" in error["message"]
    assert len(sink.received("/ok/rb")) == 2
