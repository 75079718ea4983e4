"""An operator's commands succeed beside a loaded `relay dev` on the same data dir.

SQLite's write lock has no queue; a busy writer that begins its next batch the moment it commits
kept the lock from the CLI for over its 5 s wait ("database is locked"). Writers now take turns
(crates/relay-local/src/turns.rs): 200 CLI writes while events arrive at 300 per second, none may
fail, and every event is still accepted and delivered.
"""

import json
import threading
import time

import requests

from conftest import add_github_source, add_subscription, github_request, wait_until

SECRET = "gh-admin-under-load-secret-0123456789"
RATE = 300  # events per second, spread over the sender threads
SENDERS = 30  # each waits for its answer, so the rate holds while the relay is slow
WRITERS = 2  # CLI processes at a time
WRITES = 200  # add + remove pairs: 100 of each
MAX_LOAD_SECS = 240  # the load stops by then whatever happens, so the test is bounded


def test_cli_writes_beside_a_loaded_relay_dev(dev, sink, sub_secret):
    add_github_source(dev, secret=SECRET)
    add_subscription(dev, "github", f"{sink.url}/ok/", secret=sub_secret)

    stop = threading.Event()
    answers = []  # status codes, appended by every sender
    lock = threading.Lock()

    def sender(k):
        session = requests.Session()
        interval = SENDERS / RATE
        start = time.monotonic()
        n = 0
        while not stop.is_set() and time.monotonic() - start < MAX_LOAD_SECS:
            due = start + n * interval
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            body = f'{{"action":"opened","sender":{k},"n":{n}}}'.encode()
            status = session.post(f"{dev.url}/github", data=body,
                                  headers=github_request(SECRET, body), timeout=60).status_code
            with lock:
                answers.append(status)
            n += 1

    failures = []
    written = []

    def writer(k):
        for n in range(WRITES // (2 * WRITERS)):
            result = dev.cli("subscriptions", "add", "--source", "github", "--url",
                             f"{sink.url}/churn/{k}/{n}", "--events", "push", check=False)
            if result.returncode != 0:
                failures.append(("add", result.returncode, result.stderr.strip()))
                continue
            sub_id = json.loads(result.stdout)["id"]
            written.append(sub_id)
            result = dev.cli("subscriptions", "remove", sub_id, check=False)
            if result.returncode != 0:
                failures.append(("remove", result.returncode, result.stderr.strip()))
            else:
                written.append(sub_id)

    senders = [threading.Thread(target=sender, args=(k,)) for k in range(SENDERS)]
    for t in senders:
        t.start()
    time.sleep(2)  # the load is running before the first command
    with lock:
        before = len(answers)
    started = time.monotonic()
    writers = [threading.Thread(target=writer, args=(k,)) for k in range(WRITERS)]
    for t in writers:
        t.start()
    for t in writers:
        t.join(MAX_LOAD_SECS)
    took = time.monotonic() - started
    with lock:
        during = len(answers)
    stop.set()
    for t in senders:
        t.join(60)

    accepted = answers.count(202)
    print(f"\n{len(written)} CLI writes in {took:.1f}s while {during - before} events were "
          f"answered ({(during - before) / took:.0f}/s); {len(answers)} events in all; "
          f"failures: {failures[:3]}")
    assert not failures, f"{len(failures)} CLI writes failed, first: {failures[0]}"
    assert len(written) == WRITES
    assert accepted == len(answers) > 0, {s: answers.count(s) for s in set(answers)}
    remaining = [s for s in dev.cli("subscriptions", "list") if "/churn/" in s["url"]]
    assert remaining == []
    # Every accepted event reaches the subscriber.
    wait_until(lambda: len(sink.received("/ok/")) >= accepted, timeout=120, interval=0.5,
               message=f"{accepted} deliveries")
