"""Deduplication on the provider's delivery id, and routing by event-type patterns."""

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from conftest import (
    accepted_id,
    add_github_source,
    add_subscription,
    github_request,
    send_github,
    wait_until,
)

# Source secrets need at least 16 characters.
GITHUB_SECRET = "gh-test-secret-0123456789"


def test_same_delivery_twice_is_accepted_once(dev, sink, sub_secret):
    add_github_source(dev, secret=GITHUB_SECRET)
    add_subscription(dev, "github", f"{sink.url}/ok/d", secret=sub_secret)
    delivery = str(uuid.uuid4())
    first, body, headers = send_github(dev, GITHUB_SECRET, delivery=delivery)
    event_id = accepted_id(first)

    again = dev.post_copy("/github", body, headers)
    assert again.status_code == 200, again.text
    assert again.json() == {"id": event_id, "duplicate": True}

    sink.wait_for("/ok/d", 1)
    # A different delivery id is a new event, and after it arrived the first one is still once.
    other, _, _ = send_github(dev, GITHUB_SECRET, body=body)
    other_id = accepted_id(other)
    got = sink.wait_for("/ok/d", 2)
    ids = [g["headers"]["webhook-id"] for g in got]
    assert sorted(ids) == sorted([event_id, other_id]), ids
    # Listed once the fanout has stored the first outcome, just after the delivery.
    expected = sorted([event_id, other_id])
    wait_until(lambda: sorted(e["id"] for e in dev.cli("events", "list")["events"]) == expected,
               message="both events listed")


def test_twenty_concurrent_copies_deliver_once(dev, sink, sub_secret):
    add_github_source(dev, secret=GITHUB_SECRET)
    add_subscription(dev, "github", f"{sink.url}/ok/c", secret=sub_secret)
    body = json.dumps({"action": "opened", "n": 1}).encode()
    headers = github_request(GITHUB_SECRET, body, delivery=str(uuid.uuid4()))
    def post(_):
        with requests.Session() as session:  # one connection each, all at once
            session.trust_env = False
            return session.post(f"{dev.url}/github", data=body, headers=headers, timeout=30)

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(post, range(20)))

    codes = sorted(r.status_code for r in responses)
    accepted = [r for r in responses if r.status_code == 202]
    assert len(accepted) == 1, codes
    event_id = accepted[0].json()["id"]
    for r in responses:
        if r.status_code == 200:
            assert r.json() == {"id": event_id, "duplicate": True}
        elif r.status_code == 409:
            assert int(r.headers["retry-after"]) > 0
        else:
            assert r.status_code == 202, (r.status_code, r.text)
    print(f"20 concurrent copies: {codes.count(202)} x 202, {codes.count(200)} x 200 duplicate, "
          f"{codes.count(409)} x 409")

    # A provider retrying after 409 gets the duplicate answer.
    again = dev.post_copy("/github", body, headers)
    assert again.status_code == 200 and again.json() == {"id": event_id, "duplicate": True}

    [got] = sink.wait_for("/ok/c", 1)
    assert got["headers"]["webhook-id"] == event_id
    dev.wait_attempts(event_id, lambda a: len(a) == 1)
    # Exactly one event exists, so nothing else can be delivered.
    assert [e["id"] for e in dev.cli("events", "list")["events"]] == [event_id]
    assert len(sink.received("/ok/c")) == 1


def test_routing_by_event_type_patterns(dev, sink, sub_secret):
    add_github_source(dev, secret=GITHUB_SECRET)
    patterns = {
        "push": "push",
        "issues": "issues.*",
        "all": "*",
        "list": "push,issues.*",
        "none": "pull_request,issues.closed",
    }
    subs = {
        name: add_subscription(dev, "github", f"{sink.url}/ok/{name}", events=pattern,
                               secret=sub_secret)["id"]
        for name, pattern in patterns.items()
    }
    listed = {s["id"]: s["events"] for s in dev.cli("subscriptions", "list", "--source", "github")}
    assert listed[subs["list"]] == ["push", "issues.*"]

    events = {
        "push": ("push", {"ref": "refs/heads/main"}),
        "issues.opened": ("issues", {"action": "opened"}),
        "ping": ("ping", {"zen": "hi"}),
    }
    expected = {
        "push": {"push", "all", "list"},
        "issues.opened": {"issues", "all", "list"},
        "ping": {"all"},
    }
    ids = {}
    for event_type, (header, payload) in events.items():
        response, _, _ = send_github(dev, GITHUB_SECRET, json.dumps(payload).encode(), event=header)
        ids[event_type] = accepted_id(response)

    # The fanout logs every subscription it delivered an event to; wait for all of them.
    for event_type, event_id in ids.items():
        want = {subs[name] for name in expected[event_type]}
        attempts = dev.wait_attempts(
            event_id, lambda a, want=want: {x["subscription_id"] for x in a} >= want)
        assert {x["subscription_id"] for x in attempts} == want, event_type
        assert all(x["outcome"] == "ok" for x in attempts)

    by_path = {}
    for got in sink.received("/ok/"):
        name = got["path"].split("/")[2]
        by_path.setdefault(name, set()).add(got["headers"]["x-relay-event-type"])
    assert by_path == {
        "push": {"push"},
        "issues": {"issues.opened"},
        "all": {"push", "issues.opened", "ping"},
        "list": {"push", "issues.opened"},
    }
    assert "none" not in by_path
