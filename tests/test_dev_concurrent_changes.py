"""Operators' changes made while the fanout is busy with the same subscriptions stay made: the
fanout's health writes (a run of failures starting and ending on every other attempt here) never
bring back a removed subscription, re-enable a disabled one, or lose a rotated secret."""

import threading
import time

import pytest

from conftest import add_github_source, add_subscription, room, send_github, wait_until

SECRET = "gh-concurrent-changes-secret-0123456789"
RATE = 100  # events per second
SECONDS = 8
CHANGE_AT = 2.0  # seconds into the load
ROUNDS = 10  # subscriptions added and removed while the load runs
# Caches in relay dev live 1 s; a delivery already under way when the change lands still
# finishes. Nothing may start after this much time past the change: 3 s on an idle machine,
# stretched by the measured load (`room`), since a slow machine takes longer to finish what was
# under way.
SETTLE = 3.0


@pytest.mark.dev(retry_schedule="1s,1s,1s,1s,1s")
def test_operator_changes_under_load_are_not_undone(dev, sink, sub_secret):
    add_github_source(dev, secret=SECRET)
    removed = add_subscription(dev, "github", f"{sink.url}/flap/removed", secret=sub_secret)["id"]
    disabled = add_subscription(dev, "github", f"{sink.url}/flap/disabled", secret=sub_secret)["id"]
    rotated = add_subscription(dev, "github", f"{sink.url}/flap/rotated", secret=sub_secret)["id"]

    stop = threading.Event()
    sent = []

    def load():
        start = time.monotonic()
        for n in range(RATE * SECONDS):
            if stop.is_set():
                return
            due = start + n / RATE
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            response, _, _ = send_github(dev, SECRET)
            sent.append(response.status_code)

    sender = threading.Thread(target=load)
    sender.start()
    try:
        time.sleep(CHANGE_AT)
        # Each removal races the fanout's writes of the same subscription.
        churned = []
        for n in range(ROUNDS):
            sub = add_subscription(dev, "github", f"{sink.url}/flap/churn{n}", secret=sub_secret)
            churned.append(sub["id"])
            time.sleep(0.3)
            dev.cli("subscriptions", "remove", sub["id"])
        dev.cli("subscriptions", "remove", removed)
        dev.cli("subscriptions", "disable", disabled)
        dev.cli("subscriptions", "rotate-secret", rotated, "--keep-old", "1h")
        changed_at = time.time()
    finally:
        sender.join(timeout=SECONDS * 3)
        stop.set()
    settle = room(SETTLE)
    time.sleep(settle)

    listed = {s["id"]: s for s in dev.cli("subscriptions", "list")}
    late = {
        name: sum(1 for g in sink.received(f"/flap/{name}") if g["at"] > changed_at + settle)
        for name in ("removed", "disabled")
    }
    late_churn = sum(
        1 for n in range(ROUNDS) for g in sink.received(f"/flap/churn{n}")
        if g["at"] > changed_at + settle)
    print(f"\naccepted {sent.count(202)} of {len(sent)}; deliveries starting more than "
          f"{settle:.1f}s after the change: {late}, churned {late_churn}; "
          f"rotated subscription holds {listed.get(rotated, {}).get('secrets')} secrets")
    assert sent.count(202) == len(sent) > 0
    # The fanout wrote these subscriptions throughout the load: it did keep state.
    assert len(sink.received("/flap/rotated")) > RATE
    assert removed not in listed, "the removed subscription came back"
    came_back = [sub for sub in churned if sub in listed]
    assert not came_back, f"{len(came_back)} of {ROUNDS} removed subscriptions came back"
    assert late["removed"] == 0
    assert late_churn == 0
    assert listed[disabled]["enabled"] is False, "the disabled subscription was re-enabled"
    assert listed[disabled]["disabled_reason"] == "disabled by an operator"
    assert late["disabled"] == 0
    assert listed[rotated]["enabled"] is True
    assert listed[rotated]["secrets"] == 2, "the rotated secret was lost"

    # Events sent after the rotation are signed with the new secret first, the old one second.
    fresh = [send_github(dev, SECRET)[1] for _ in range(3)]

    def delivered_fresh():
        got = [g for g in sink.received("/flap/rotated") if g["body"] in fresh]
        return got if {g["body"] for g in got} == set(fresh) else None

    for got in wait_until(delivered_fresh, timeout=10, message="the events sent after the rotation"):
        assert len(got["headers"]["webhook-signature"].split(" ")) == 2
