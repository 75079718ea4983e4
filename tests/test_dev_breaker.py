"""The breaker in `relay dev`: a subscriber answering 429 with Retry-After is paused for that
long (shown by `relay status` and `subscriptions list` while it holds), nothing is attempted
meanwhile, then one probe delivers and closes it; events that came during the pause are
delivered after it, without failed attempts."""

from conftest import accepted_id, add_github_source, send_github, wait_until

GITHUB_SECRET = "gh-test-secret-0123456789"
RETRY_AFTER = 6


def attempts_of(attempts, sub_id):
    return sorted((a for a in attempts if a["subscription_id"] == sub_id),
                  key=lambda a: a["attempt"])


def test_429_with_retry_after_pauses_until_one_probe_delivers(dev, sink, sub_secret):
    add_github_source(dev, secret=GITHUB_SECRET)
    path = f"/throttle/1/{RETRY_AFTER}/b"
    # A short timeout keeps the probe's hold on the others short.
    sub = dev.cli("subscriptions", "add", "--source", "github", "--url", f"{sink.url}{path}",
                  "--secret", sub_secret, "--timeout", "2s")["id"]

    first = accepted_id(send_github(dev, GITHUB_SECRET)[0])
    [answered] = dev.wait_attempts(first, lambda a: len(attempts_of(a, sub)) == 1,
                                   message="the 429")
    assert (answered["outcome"], answered["status"], answered["next"]) == \
        ("http_status", 429, "retry_scheduled")

    # The pause is stored with the 429's outcome: status and list show it while it holds.
    status = dev.cli("status")
    [paused] = [s for s in status["subscriptions"] if s["id"] == sub]
    assert paused["paused_until"] is not None
    [listed] = [s for s in dev.cli("subscriptions", "list") if s["id"] == sub]
    assert listed["paused_until"] == paused["paused_until"]
    text = dev.cli("status", json=False).stdout
    assert any(sub in line and "paused until" in line for line in text.splitlines()), text

    # An event during the pause waits: handed to the deliveries queue, not attempted.
    second = accepted_id(send_github(dev, GITHUB_SECRET)[0])
    [waiting] = dev.wait_attempts(second, lambda a: len(attempts_of(a, sub)) == 1,
                                  message="the second event's hand-off")
    assert (waiting["outcome"], waiting["next"]) == ("deferred", "retry_scheduled")

    # After the pause: one probe, delivered; then the event that waited.
    got = sink.wait_for(path, 3, timeout=60)
    assert [g["status"] for g in got] == [429, 200, 200]
    # Nothing in between: the first request after the 429 came once the Retry-After was over.
    assert got[1]["at"] - got[0]["at"] >= RETRY_AFTER - 0.5, got
    assert sorted(g["headers"]["webhook-id"] for g in got[1:]) == sorted([first, second])

    first_log = dev.wait_attempts(first, lambda a: any(x["next"] == "done" for x in a))
    assert [(a["attempt"], a["outcome"], a.get("status"), a["next"])
            for a in attempts_of(first_log, sub)] == [
        (1, "http_status", 429, "retry_scheduled"),
        (2, "ok", 200, "done"),
    ]
    second_log = dev.wait_attempts(second, lambda a: any(x["next"] == "done" for x in a))
    assert [(a["attempt"], a["outcome"], a["next"]) for a in attempts_of(second_log, sub)] == [
        (1, "ok", "done"),
    ]

    # The probe closed it: no pause, no failing run.
    closed = wait_until(
        lambda: all(s["id"] != sub for s in dev.cli("status")["subscriptions"]),
        message="the subscription to leave the status's attention list")
    assert closed
    [listed] = [s for s in dev.cli("subscriptions", "list") if s["id"] == sub]
    assert listed["paused_until"] is None and listed["failing_since"] is None
    assert len(sink.received(path)) == 3
