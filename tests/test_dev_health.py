"""Endpoint health: a subscription that keeps failing for the whole health window is disabled with
the reason recorded, its retries stop, and `subscriptions enable` restores it."""

from conftest import accepted_id, add_github_source, add_subscription, send_github, wait_until

# Source secrets need at least 16 characters.
GITHUB_SECRET = "gh-test-secret-0123456789"


def test_failing_for_the_window_disables(dev_factory, sink, sub_secret, monkeypatch):
    # A 1-second window instead of 5 days; the schedule has more retries than the window allows.
    monkeypatch.setenv("RELAY_DISABLE_AFTER_FAILING_SECS", "1")
    dev = dev_factory(retry_schedule="1s,1s,1s,1s,1s")
    add_github_source(dev, secret=GITHUB_SECRET)
    sub = add_subscription(dev, "github", f"{sink.url}/status/503/h", secret=sub_secret)["id"]
    event_id = accepted_id(send_github(dev, GITHUB_SECRET)[0])

    attempts = dev.wait_attempts(
        event_id, lambda a: any(x["next"] == "disabled" for x in a), timeout=20,
        message="the subscription to be disabled")
    nexts = [a["next"] for a in sorted(attempts, key=lambda a: a["attempt"])]
    # The first failure starts the run; the first failure a window later disables.
    assert nexts[0] == "retry_scheduled"
    assert nexts[-1] == "disabled"
    assert "dead_lettered" not in nexts

    listed = {s["id"]: s for s in dev.cli("subscriptions", "list")}
    assert listed[sub]["enabled"] is False
    assert "failing continuously" in listed[sub]["disabled_reason"]

    # No more attempts after it was disabled.
    count = len(sink.received("/status/503/h"))
    assert count == len(nexts)
    event2 = accepted_id(send_github(dev, GITHUB_SECRET)[0])
    wait_until(lambda: any(e["id"] == event2 for e in dev.cli("events", "list")["events"]),
               message="the second event to be stored")

    dev.cli("subscriptions", "enable", sub)
    listed = {s["id"]: s for s in dev.cli("subscriptions", "list")}
    assert listed[sub]["enabled"] is True and listed[sub]["disabled_reason"] is None
    assert len(sink.received("/status/503/h")) == count
