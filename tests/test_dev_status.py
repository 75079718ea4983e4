"""`relay status` on the local store: queue depths and ages, the subscriptions that need
attention, and the last hour's counts, checked against what the run did (the 202s, the attempt
log) field by field, in `--json` and on the one screen."""

import time

import pytest

from conftest import accepted_id, add_github_source, add_subscription, send_github, wait_until

GITHUB_SECRET = "gh-test-secret-0123456789"
FAILED_OUTCOMES = {"gone", "redirect", "http_status", "timeout", "connect", "refused_destination",
                   "invalid_request"}


def settled(status):
    """Both events fanned out: the events queue empty, the failing subscription's two retries
    waiting on the deliveries queue."""
    queues = status["queues"]
    events, deliveries = queues["events"], queues["deliveries"]
    done = (events["visible"] + events["in_flight"] + events["delayed"] == 0
            and deliveries["delayed"] == 2 and deliveries["visible"] + deliveries["in_flight"] == 0)
    return status if done else None


# A 10-minute first retry keeps each failed delivery delayed on the deliveries queue.
@pytest.mark.dev(retry_schedule="10m")
def test_status_shows_queues_attention_and_the_last_hour(dev, sink, sub_secret):
    started = time.time()
    add_github_source(dev, secret=GITHUB_SECRET)
    ok = add_subscription(dev, "github", f"{sink.url}/ok/a", secret=sub_secret)["id"]
    failing = add_subscription(dev, "github", f"{sink.url}/status/500/f", secret=sub_secret)["id"]
    gone = add_subscription(dev, "github", f"{sink.url}/status/410/g", secret=sub_secret)["id"]

    first = accepted_id(send_github(dev, GITHUB_SECRET)[0])
    # The 410 disables its subscription; the second event comes after that is settled.
    dev.wait_attempts(first, lambda a: {x["subscription_id"] for x in a} == {ok, failing, gone},
                      message="the first event's three attempts")
    second = accepted_id(send_github(dev, GITHUB_SECRET)[0])

    status = wait_until(lambda: settled(dev.cli("status")), timeout=20, interval=0.2,
                        message="both events fanned out")
    elapsed = time.time() - started

    # Queues: every queue reported; only the deliveries queue holds anything, and its oldest
    # message is no older than this test.
    assert set(status["queues"]) == {
        "events", "events-dlq", "deliveries", "deliveries-dlq", "failing-deliveries"
    }
    for name in ("events", "events-dlq", "deliveries-dlq", "failing-deliveries"):
        assert status["queues"][name] == {"visible": 0, "in_flight": 0, "delayed": 0,
                                          "oldest_age_secs": None}, name
    deliveries = status["queues"]["deliveries"]
    assert (deliveries["visible"], deliveries["in_flight"], deliveries["delayed"]) == (0, 0, 2)
    assert 0 <= deliveries["oldest_age_secs"] <= elapsed + 1

    # Subscriptions: the failing one with the start of its run, the one that answered 410 with
    # its reason as stored; the healthy one is not listed.
    listed = {s["id"]: s for s in status["subscriptions"]}
    assert set(listed) == {failing, gone}
    assert listed[failing]["enabled"] is True
    assert listed[failing]["disabled_reason"] is None
    assert started - 1 <= listed[failing]["failing_since"] <= time.time()
    assert listed[failing]["url"] == f"{sink.url}/status/500/f"
    assert listed[gone]["enabled"] is False
    stored = {s["id"]: s for s in dev.cli("subscriptions", "list")}
    assert listed[gone]["disabled_reason"] == stored[gone]["disabled_reason"]
    assert "410" in listed[gone]["disabled_reason"]
    assert all(s["source"] == "github" for s in listed.values())

    # The last hour: both events accepted; delivered and failed as the attempt logs have them.
    attempts = dev.event(first)["attempts"] + dev.event(second)["attempts"]
    delivered = sum(a["outcome"] == "ok" for a in attempts)
    failed = sum(a["outcome"] in FAILED_OUTCOMES for a in attempts)
    assert (delivered, failed) == (2, 3), attempts
    assert status["last_hour"] == {"accepted": 2, "delivered": 2, "failed": 3}
    assert status["last_hour_error"] is None
    assert started * 1000 - 1000 <= status["at"] <= time.time() * 1000

    # The one screen says the same.
    text = dev.cli("status", json=False).stdout
    lines = text.splitlines()
    assert lines[0].split() == ["queue", "visible", "in", "flight", "delayed", "oldest"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:5]}
    assert rows["events"] == ["0", "0", "0", "-"]
    assert rows["deliveries"][:3] == ["0", "0", "2"] and rows["deliveries"][3].endswith("s")
    assert rows["deliveries-dlq"] == ["0", "0", "0", "-"]
    assert "subscriptions failing, disabled or refused: 2" in text
    failing_line = next(line for line in lines if failing in line)
    assert "failing since" in failing_line and "/status/500/f" in failing_line
    gone_line = next(line for line in lines if gone in line)
    assert f"disabled: {listed[gone]['disabled_reason']}" in gone_line
    assert ok not in text
    assert lines[-1] == "last hour: 2 accepted, 2 delivered, 3 failed"
