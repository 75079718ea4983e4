"""The failing lane in `relay dev`: a subscription that keeps failing has its retries on the
`failing-deliveries` queue, consumed apart, and its first delivery brings it back to the
deliveries queue (crates/relay-core/src/fanout/lane.rs). The lag figures with a 10,000-event
backlog are `relay-bench isolation` (docs/scale.md "Isolation"); this checks where each retry
waits, as `relay status` counts them."""

import time

import pytest

from conftest import accepted_id, add_github_source, add_subscription, send_github, wait_until

GITHUB_SECRET = "gh-test-secret-0123456789"


def failed(attempts):
    return any(a["outcome"] == "http_status" for a in attempts)


def delayed(dev):
    queues = dev.cli("status")["queues"]
    return queues["deliveries"]["delayed"], queues["failing-deliveries"]["delayed"]


# A 10-minute first retry keeps each failed delivery delayed where it was queued.
@pytest.mark.dev(retry_schedule="10m")
def test_a_subscription_that_keeps_failing_retries_on_its_own_lane_until_it_delivers(dev, sink,
                                                                                    sub_secret):
    add_github_source(dev, secret=GITHUB_SECRET)
    sub = add_subscription(dev, "github", f"{sink.url}/status/500/dead", secret=sub_secret)["id"]

    # Seven events, one at a time: the first four failures leave their retries on the
    # deliveries queue; from the fifth failure in a row, the failing lane. (A run of failures
    # older than 60 s moves them there sooner on a slow machine: never later.)
    for n in range(7):
        event = accepted_id(send_github(dev, GITHUB_SECRET)[0])
        dev.wait_attempts(event, failed, message=f"event {n + 1} failed")
    on_deliveries, on_lane = wait_until(
        lambda: (lambda d: d if sum(d) == 7 else None)(delayed(dev)),
        message="seven retries waiting")
    assert 1 <= on_deliveries <= 4, (on_deliveries, on_lane)
    assert on_lane >= 3, (on_deliveries, on_lane)

    # It delivers again (handed off on its lane, as it is failing); a later failure's retry is
    # back on the deliveries queue.
    dev.cli("subscriptions", "update", sub, "--url", f"{sink.url}/ok/back")
    time.sleep(2)  # relay dev caches subscriptions for 1 s
    event = accepted_id(send_github(dev, GITHUB_SECRET)[0])
    dev.wait_attempts(event, lambda a: any(x["outcome"] == "ok" for x in a),
                      message="the delivery after the fix")
    dev.cli("subscriptions", "update", sub, "--url", f"{sink.url}/status/500/again")
    time.sleep(2)
    event = accepted_id(send_github(dev, GITHUB_SECRET)[0])
    dev.wait_attempts(event, failed, message="a new failure")
    wait_until(lambda: delayed(dev) == (on_deliveries + 1, on_lane),
               message="the new failure's retry on the deliveries queue")
