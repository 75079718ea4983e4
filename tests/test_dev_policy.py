"""Per-subscription delivery policy in `relay dev`: a subscription retried on its own schedule
and timeout beside ones on the relay's, a rate-limited subscription's deliveries spaced without
a failed attempt, the policy shown by `subscriptions list`, and bad values refused (exit 2,
nothing stored)."""

import pytest

from conftest import accepted_id, add_github_source, add_subscription, send_github

GITHUB_SECRET = "gh-test-secret-0123456789"


def attempts_of(attempts, sub_id):
    return sorted((a for a in attempts if a["subscription_id"] == sub_id),
                  key=lambda a: a["attempt"])


def add_with_policy(dev, url, secret, *policy):
    return dev.cli("subscriptions", "add", "--source", "github", "--url", url,
                   "--secret", secret, *policy)


# The relay's own: three retries a second apart, attempts of up to 5 s.
@pytest.mark.dev(retry_schedule="1s,1s,1s", args=["--delivery-timeout", "5"])
def test_own_schedule_and_timeout_beside_the_defaults(dev, sink, sub_secret):
    add_github_source(dev, secret=GITHUB_SECRET)
    # Hangs 2 s: past its own 1 s timeout, within the relay's 5 s.
    own = add_with_policy(dev, f"{sink.url}/hang/2/own", sub_secret,
                          "--retry-schedule", "3s,3s", "--timeout", "1s")["id"]
    patient = add_subscription(dev, "github", f"{sink.url}/hang/2/patient", secret=sub_secret)["id"]
    # Fails three times: the relay's schedule has room for that.
    default = add_subscription(dev, "github", f"{sink.url}/fail/3/default", secret=sub_secret)["id"]
    event_id = accepted_id(send_github(dev, GITHUB_SECRET)[0])

    def settled(attempts):
        return (any(a["subscription_id"] == own and a["next"] == "dead_lettered" for a in attempts)
                and any(a["subscription_id"] == default and a["next"] == "done" for a in attempts)
                and any(a["subscription_id"] == patient for a in attempts))

    attempts = dev.wait_attempts(event_id, settled, timeout=60,
                                 message="every subscription's last attempt")
    mine = attempts_of(attempts, own)
    # Its own schedule: two retries, then the dead letter; every attempt cut at 1 s.
    assert [(a["attempt"], a["outcome"], a["next"]) for a in mine] == [
        (1, "timeout", "retry_scheduled"),
        (2, "timeout", "retry_scheduled"),
        (3, "timeout", "dead_lettered"),
    ]
    assert all(900 <= a["latency_ms"] < 2000 for a in mine), mine
    # 3 s apart (less 20% jitter) after each 1 s attempt: never sooner.
    starts = [a["at"] for a in mine]
    assert all(later - earlier >= 2400 + 900 for earlier, later in zip(starts, starts[1:])), starts

    # The relay's timeout: the 2 s answer is waited for.
    [waited] = attempts_of(attempts, patient)
    assert (waited["outcome"], waited["next"]) == ("ok", "done")
    assert waited["latency_ms"] >= 1900
    # The relay's schedule: three retries, the fourth attempt delivers.
    assert [(a["attempt"], a["next"]) for a in attempts_of(attempts, default)] == [
        (1, "retry_scheduled"), (2, "retry_scheduled"), (3, "retry_scheduled"), (4, "done"),
    ]
    assert len(sink.received("/hang/2/own")) == 3


def test_rate_spaces_deliveries_without_failed_attempts(dev, sink, sub_secret):
    add_github_source(dev, secret=GITHUB_SECRET)
    paced = add_with_policy(dev, f"{sink.url}/ok/paced", sub_secret, "--rate", "2",
                            "--max-in-flight", "1")["id"]
    free = add_subscription(dev, "github", f"{sink.url}/ok/free", secret=sub_secret)["id"]
    count = 8
    events = [accepted_id(send_github(dev, GITHUB_SECRET)[0]) for _ in range(count)]

    got = sink.wait_for("/ok/paced", count, timeout=60)
    assert sorted(g["headers"]["webhook-id"] for g in got) == sorted(events)
    # At most two a second: each arrival half a second after the one before (less a little for
    # the network between the relay and the sink), so the whole run spans at least 3.5 s.
    arrivals = sorted(g["at"] for g in got)
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert all(gap >= 0.4 for gap in gaps), gaps
    assert arrivals[-1] - arrivals[0] >= (count - 1) * 0.5 - 0.2, arrivals
    assert len(sink.wait_for("/ok/free", count)) == count

    # Waiting for its turn is not a failure: one attempt per event, delivered.
    for event_id in events:
        attempts = dev.wait_attempts(
            event_id, lambda a: any(x["subscription_id"] == paced and x["outcome"] == "ok"
                                    for x in a))
        assert [(a["attempt"], a["outcome"], a["next"]) for a in attempts_of(attempts, paced)] \
            == [(1, "ok", "done")]
        assert [a["outcome"] for a in attempts_of(attempts, free)] == ["ok"]
    listed = {s["id"]: s for s in dev.cli("subscriptions", "list")}
    assert listed[paced]["failing_since"] is None and listed[paced]["paused_until"] is None


def test_list_shows_policy_and_update_resets_it(dev, sink, sub_secret):
    add_github_source(dev, secret=GITHUB_SECRET)
    sub = add_with_policy(dev, f"{sink.url}/ok/p", sub_secret, "--retry-schedule", "10s, 1m",
                          "--timeout", "2m", "--max-in-flight", "4", "--rate", "0.5")
    expected = {"retry_schedule": "10s,1m", "timeout_secs": 120, "max_in_flight": 4, "rate": 0.5}
    assert sub["policy"] == expected
    [listed] = [s for s in dev.cli("subscriptions", "list") if s["id"] == sub["id"]]
    assert listed["policy"] == expected

    text = dev.cli("subscriptions", "list", json=False).stdout
    [row] = [line for line in text.splitlines() if sub["id"] in line]
    assert "retry=10s,1m timeout=120s in-flight=4 rate=0.5/s" in row

    plain = add_subscription(dev, "github", f"{sink.url}/ok/q", secret=sub_secret)
    assert plain["policy"] == {"retry_schedule": None, "timeout_secs": None,
                               "max_in_flight": None, "rate": None}
    [row] = [line for line in dev.cli("subscriptions", "list", json=False).stdout.splitlines()
             if plain["id"] in line]
    # The policy column, then paused-until.
    assert row.split()[-2:] == ["default", "-"]

    # `default` gives a field back to the relay's setting; the others stay.
    updated = dev.cli("subscriptions", "update", sub["id"], "--timeout", "default",
                      "--rate", "default", "--retry-schedule", "")
    assert updated["policy"] == {"retry_schedule": "", "timeout_secs": None,
                                 "max_in_flight": 4, "rate": None}
    assert updated["id"] == sub["id"] and updated["url"] == sub["url"]


@pytest.mark.parametrize("flag,value", [
    ("--rate", "0"), ("--rate", "fast"), ("--timeout", "0s"), ("--timeout", "16m"),
    ("--max-in-flight", "0"), ("--max-in-flight", "-2"), ("--retry-schedule", "5s,soon"),
])
def test_bad_policy_values_exit_2_and_store_nothing(dev, sink, sub_secret, flag, value):
    add_github_source(dev, secret=GITHUB_SECRET)
    kept = add_subscription(dev, "github", f"{sink.url}/ok/k", secret=sub_secret)
    before = dev.cli("subscriptions", "list")

    added = dev.cli("subscriptions", "add", "--source", "github", "--url", f"{sink.url}/ok/x",
                    f"{flag}={value}", check=False)
    assert added.returncode == 2, added.stderr
    assert flag in added.stderr
    updated = dev.cli("subscriptions", "update", kept["id"], f"{flag}={value}", check=False)
    assert updated.returncode == 2, updated.stderr
    assert flag in updated.stderr
    assert dev.cli("subscriptions", "list") == before
