"""A crash while one subscriber is slow re-sends the event only to the subscriptions whose outcome
was not recorded yet: a sibling that already answered 2xx does not get it again."""

import json

import pytest

from conftest import accepted_id, add_github_source, add_subscription, send_github, wait_until

SECRET = "gh-crash-siblings-secret-0123456789"


# A short delivery timeout keeps the visibility timeout of the message the killed process held
# (timeout + 30 s) as short as it goes.
@pytest.mark.dev(args=["--delivery-timeout", "3"])
def test_crash_with_a_slow_sibling_does_not_repeat_settled_deliveries(dev, sink, sub_secret):
    add_github_source(dev, secret=SECRET)
    add_subscription(dev, "github", f"{sink.url}/status/200/fast", secret=sub_secret)
    add_subscription(dev, "github", f"{sink.url}/slow/2500/slow", secret=sub_secret)

    event_id = accepted_id(send_github(dev, SECRET, json.dumps({"n": 1}).encode())[0])
    wait_until(lambda: sink.received("/status/200/fast"), timeout=10,
               message="the fast subscriber's delivery")
    # The slow sibling is still being answered: kill the relay now.
    dev.kill()
    dev.restart()

    def slow_done():
        attempts = dev.attempts(event_id) or []
        done = {a["subscription_id"] for a in attempts if a["next"] == "done"}
        return len(done) == 2

    wait_until(slow_done, timeout=90, interval=0.5,
               message="the slow subscriber's delivery after the restart")
    fast = [g for g in sink.received("/status/200/fast") if g["headers"]["webhook-id"] == event_id]
    slow = [g for g in sink.received("/slow/2500/slow") if g["headers"]["webhook-id"] == event_id]
    print(f"\ncrash with a slow sibling: fast subscriber got {len(fast)}, slow got {len(slow)}")
    assert len(slow) >= 1
    assert len(fast) == 1, f"the settled subscriber got the event {len(fast)} times"
