"""Per-subscription retries on the schedule, the DLQ and redrive, and 410 disabling."""

import pytest

from conftest import accepted_id, add_github_source, add_subscription, send_github

# Source secrets need at least 16 characters.
GITHUB_SECRET = "gh-test-secret-0123456789"
from conftest import wait_until as wait_until_value


def attempts_of(attempts, sub_id):
    return sorted((a for a in attempts if a["subscription_id"] == sub_id), key=lambda a: a["attempt"])


def test_failing_subscription_retries_alone(dev, sink, sub_secret):
    add_github_source(dev, secret=GITHUB_SECRET)
    failing = add_subscription(dev, "github", f"{sink.url}/fail/2/x", secret=sub_secret)["id"]
    healthy = add_subscription(dev, "github", f"{sink.url}/ok/h", secret=sub_secret)["id"]
    response, body, _ = send_github(dev, GITHUB_SECRET)
    event_id = accepted_id(response)

    attempts = dev.wait_attempts(
        event_id, lambda a: any(x["subscription_id"] == failing and x["next"] == "done" for x in a),
        message="the third attempt to succeed")
    mine = attempts_of(attempts, failing)
    assert [(a["attempt"], a["outcome"], a.get("status"), a["next"]) for a in mine] == [
        (1, "http_status", 500, "retry_scheduled"),
        (2, "http_status", 500, "retry_scheduled"),
        (3, "ok", 200, "done"),
    ]
    assert [(a["attempt"], a["next"]) for a in attempts_of(attempts, healthy)] == [(1, "done")]

    got = sink.received("/fail/2/x")
    assert [g["headers"]["x-relay-attempt"] for g in got] == ["1", "2", "3"]
    assert {g["headers"]["webhook-id"] for g in got} == {event_id}
    assert all(g["body"] == body and g["verified_with"] == [sub_secret] for g in got)
    assert [g["status"] for g in got] == [500, 500, 200]
    # Signed afresh each time (never earlier than the previous attempt).
    stamps = [int(g["headers"]["webhook-timestamp"]) for g in got]
    assert stamps == sorted(stamps)
    # The healthy subscription was delivered to once, whatever the other one went through.
    healthy_got = sink.received("/ok/h")
    assert [g["headers"]["x-relay-attempt"] for g in healthy_got] == ["1"]
    assert healthy_got[0]["headers"]["webhook-id"] == event_id


@pytest.mark.dev(retry_schedule="1s,1s")
def test_spent_schedule_dead_letters(dev, sink, sub_secret):
    add_github_source(dev, secret=GITHUB_SECRET)
    sub = add_subscription(dev, "github", f"{sink.url}/status/500/d", secret=sub_secret)["id"]
    response, _, _ = send_github(dev, GITHUB_SECRET)
    event_id = accepted_id(response)
    attempts = dev.wait_attempts(event_id, lambda a: any(x["next"] == "dead_lettered" for x in a),
                                 message="the delivery to be dead-lettered")
    assert [(a["attempt"], a.get("status"), a["next"]) for a in attempts_of(attempts, sub)] == [
        (1, 500, "retry_scheduled"),
        (2, 500, "retry_scheduled"),
        (3, 500, "dead_lettered"),
    ]
    got = sink.received("/status/500/d")
    assert [g["headers"]["x-relay-attempt"] for g in got] == ["1", "2", "3"]


@pytest.mark.dev(retry_schedule="1s,1s")
def test_redrive_gives_another_attempt(dev, sink, sub_secret):
    add_github_source(dev, secret=GITHUB_SECRET)
    sub = add_subscription(dev, "github", f"{sink.url}/fail/3/z", secret=sub_secret)["id"]
    response, body, _ = send_github(dev, GITHUB_SECRET)
    event_id = accepted_id(response)
    dev.wait_attempts(event_id, lambda a: any(x["next"] == "dead_lettered" for x in a),
                      message="the delivery to be dead-lettered")
    assert len(sink.received("/fail/3/z")) == 3

    # Nothing in the events DLQ; the one delivery comes back from the deliveries DLQ.
    assert dev.cli("redrive", "--queue", "events") == {"events": 0}
    assert dev.cli("redrive", "--queue", "deliveries") == {"deliveries": 1}

    attempts = dev.wait_attempts(event_id, lambda a: any(x["next"] == "done" for x in a),
                                 message="the redriven attempt")
    assert [(a["attempt"], a["next"]) for a in attempts_of(attempts, sub)] == [
        (1, "retry_scheduled"), (2, "retry_scheduled"), (3, "dead_lettered"), (4, "done"),
    ]
    got = sink.received("/fail/3/z")
    assert [g["headers"]["x-relay-attempt"] for g in got] == ["1", "2", "3", "4"]
    assert {g["headers"]["webhook-id"] for g in got} == {event_id}
    assert got[-1]["status"] == 200 and got[-1]["body"] == body
    assert got[-1]["verified_with"] == [sub_secret]
    # Both DLQs are empty now.
    assert dev.cli("redrive") == {"events": 0, "deliveries": 0}


def test_410_disables_until_enabled(dev, sink, sub_secret):
    add_github_source(dev, secret=GITHUB_SECRET)
    sub = add_subscription(dev, "github", f"{sink.url}/status/410/g", secret=sub_secret)["id"]
    witness = add_subscription(dev, "github", f"{sink.url}/ok/w", secret=sub_secret)["id"]
    response, _, _ = send_github(dev, GITHUB_SECRET)
    event_id = accepted_id(response)
    attempts = dev.wait_attempts(event_id, lambda a: len(a) == 2)
    [attempt] = attempts_of(attempts, sub)
    assert (attempt["outcome"], attempt.get("status"), attempt["next"]) == ("gone", 410, "disabled")

    listed = {s["id"]: s for s in dev.cli("subscriptions", "list", "--source", "github")}
    assert listed[sub]["enabled"] is False and "410" in listed[sub]["disabled_reason"]
    assert listed[witness]["enabled"] is True
    assert len(sink.received("/status/410/g")) == 1

    # Disabled: the next event goes to the witness only.
    response, _, _ = send_github(dev, GITHUB_SECRET, event="push")
    skipped = accepted_id(response)
    attempts = dev.wait_attempts(skipped, lambda a: len(a) >= 1)
    assert [a["subscription_id"] for a in attempts] == [witness]

    enabled = dev.cli("subscriptions", "enable", sub)
    assert enabled["enabled"] is True and enabled["disabled_reason"] is None
    listed = {s["id"]: s for s in dev.cli("subscriptions", "list")}
    assert listed[sub]["enabled"] is True

    # Enabled again: `relay dev` caches subscriptions for a second, so new events reach it
    # within about that (and, as it still answers 410, it is disabled again).
    def delivered_to_it():
        response, _, _ = send_github(dev, GITHUB_SECRET)
        event = accepted_id(response)
        dev.wait_attempts(event, lambda a: any(x["subscription_id"] == witness for x in a))
        # A round's attempts are logged one after another: the witness's first does not mean
        # the other's is missing.
        try:
            dev.wait_attempts(event, lambda a: bool(attempts_of(a, sub)), timeout=2)
        except AssertionError:
            return None
        return event

    again = wait_until_value(delivered_to_it, timeout=10, message="the enabled subscription")
    got = sink.received("/status/410/g")
    assert [g["headers"]["webhook-id"] for g in got] == [event_id, again]
    assert [g["headers"]["x-relay-attempt"] for g in got] == ["1", "1"]
