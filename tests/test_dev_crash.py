"""At-least-once across a crash: SIGKILL `relay dev` with deliveries in flight, restart it on the
same data dir, and every event that was answered 202 is still delivered."""

import json
from collections import Counter

import pytest

from conftest import accepted_id, add_github_source, add_subscription, send_github, wait_until

# Source secrets need at least 16 characters.
GITHUB_SECRET = "gh-test-secret-0123456789"

EVENTS = 50


# A short delivery timeout keeps the visibility timeout of messages the killed process held
# (timeout + 30 s) as short as it goes, so they come back soon after the restart.
@pytest.mark.dev(args=["--delivery-timeout", "2"])
def test_sigkill_with_deliveries_in_flight_loses_nothing(dev, sink, sub_secret):
    add_github_source(dev, secret=GITHUB_SECRET)
    add_subscription(dev, "github", f"{sink.url}/slow/300/c", secret=sub_secret)

    accepted = []
    for n in range(EVENTS):
        response, _, _ = send_github(dev, GITHUB_SECRET, json.dumps({"n": n}).encode(), event="push")
        accepted.append(accepted_id(response))
    # Deliveries take 300 ms each, so the latest events are still being delivered: kill now.
    before_kill = {g["headers"]["webhook-id"] for g in sink.received("/slow/300/c")}
    dev.kill()

    dev.restart()
    after_restart = {g["headers"]["webhook-id"] for g in sink.received("/slow/300/c")}

    def all_at_sink():
        got = sink.received("/slow/300/c")
        return got if set(accepted) <= {g["headers"]["webhook-id"] for g in got} else None

    wait_until(all_at_sink, timeout=90, interval=0.5,
               message="every accepted event to be delivered after the restart")

    # The relay itself settles every event: the messages the killed process held come back
    # after their visibility timeout and are delivered again (at-least-once).
    outstanding = list(accepted)

    def relay_settled_all():
        while outstanding:
            attempts = dev.attempts(outstanding[0]) or []
            if not any(a["next"] == "done" for a in attempts):
                return False
            outstanding.pop(0)
        return True

    wait_until(relay_settled_all, timeout=90, interval=1,
               message="the relay to record a delivery of every accepted event")
    got = sink.received("/slow/300/c")
    counts = Counter(g["headers"]["webhook-id"] for g in got)
    duplicates = sum(c - 1 for c in counts.values())
    print(f"\ncrash: accepted {len(accepted)}, at the sink before the kill {len(before_kill)}, "
          f"by the restart {len(after_restart)}, delivered distinct {len(counts)}, "
          f"duplicates {duplicates}")
    assert set(counts) == set(accepted)  # nothing that was not accepted
    assert len(before_kill) < EVENTS, "no delivery was in flight at the kill; the test proved nothing"
    assert all(g["verified_with"] == [sub_secret] for g in got)
