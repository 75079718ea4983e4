"""Recovering an outage with `relay dev` on SQLite: `events list` by subscription, state, time
and type; `relay replay` in bulk (dry run, the real run, a run again, a source's
subscriptions), its refusals and exit codes, and the 10,000-delivery bound."""

import datetime
import json
import sqlite3
import time
import uuid

import pytest

from conftest import accepted_id, add_github_source, add_subscription, run_cli, send_github, wait_until


def ids_of(listing):
    return [e["id"] for e in listing["events"]]


@pytest.mark.dev(retry_schedule="1s")
def test_a_failed_subscription_is_found_and_recovered_in_one_command(dev, sink):
    secret = add_github_source(dev)
    # "down" fails its first 6 requests: the 3 events' first attempts and their one retry
    # ("1s" below), which then dead-letter; the subscriber is back after that.
    down = add_subscription(dev, "github", f"{sink.url}/fail/6/down", secret=sink.secrets[0])["id"]
    healthy = add_subscription(dev, "github", f"{sink.url}/ok/healthy", events="issues.*",
                               secret=sink.secrets[0])["id"]
    sent = []
    for n in range(3):
        if n < 2:
            response, _, _ = send_github(dev, secret, event="issues")
        else:
            body = json.dumps({"ref": "refs/heads/main", "n": n}).encode()
            response, _, _ = send_github(dev, secret, event="push", body=body)
        sent.append(accepted_id(response))
    for event_id in sent:
        dev.wait_attempts(event_id, lambda a: any(x["next"] == "dead_lettered" for x in a),
                          timeout=30, message=f"{event_id} dead-lettered for down")
    sink.wait_for("/ok/healthy", 2)

    # Search: the subscription's view, newest first, with its state.
    dead = dev.cli("events", "list", "--subscription", down, "--status", "dead")
    assert ids_of(dead) == sent[::-1]
    assert {e["state"] for e in dead["events"]} == {"dead"}
    assert ids_of(dev.cli("events", "list", "--subscription", down, "--status", "failed")) == sent[::-1]
    assert dev.cli("events", "list", "--subscription", down, "--status", "delivered")["events"] == []
    # healthy takes issues only: the push is not its event.
    assert ids_of(dev.cli("events", "list", "--subscription", healthy, "--status", "delivered")) == sent[1::-1]
    assert dev.cli("events", "list", "--subscription", healthy, "--status", "pending")["events"] == []
    assert ids_of(dev.cli("events", "list", "--type", "push")) == [sent[2]]
    assert ids_of(dev.cli("events", "list", "--since", "10m")) == sent[::-1]
    assert dev.cli("events", "list", "--until", "10m")["events"] == []
    future = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ids_of(dev.cli("events", "list", "--until", future, "--limit", "2")) == sent[:0:-1]
    text = dev.cli("events", "list", "--subscription", down, json=False).stdout
    # Piped: a tab-separated header line, then one line per event.
    assert text.splitlines()[0] == "ID\tRECEIVED\tSOURCE\tTYPE\tSTATE", text
    assert text.splitlines()[1].endswith("\tdead"), text

    # The dry run sends nothing and shows the events, oldest first.
    # (The sink's /fail/6 counts on: the outage's 6 failures are behind it.)
    before = len(sink.received("/fail/6/down"))
    assert before == 6
    dry = dev.cli("replay", "--subscription", down, "--since", "1h30m", "--dry-run")
    assert dry["matched"] == 3 and dry["enqueued"] == 0 and dry["dry_run"] is True
    assert dry["event_ids"] == sent
    # The real run: one delivery per event, as the same webhook-id, signed and verified.
    done = dev.cli("replay", "--subscription", down, "--since", "1h30m")
    assert done == {"matched": 3, "enqueued": 3, "skipped": []}
    got = sink.wait_for("/fail/6/down", before + 3)[before:]
    assert sorted(r["headers"]["webhook-id"] for r in got) == sorted(sent)
    assert all(r["status"] == 200 and r["verified_with"] for r in got), got
    wait_until(lambda: len(dev.cli("events", "list", "--subscription", down,
                                   "--status", "delivered")["events"]) == 3,
               message="the replayed deliveries logged")
    # Run again: nothing is left to send.
    assert dev.cli("replay", "--subscription", down, "--since", "1h30m") == {
        "matched": 0, "enqueued": 0, "skipped": []}
    # The source's subscriptions, every state: 3 events for down, 2 for healthy.
    everything = dev.cli("replay", "--source", "github", "--since", "1h", "--status", "any", "--dry-run")
    assert everything["matched"] == 5
    # A disabled subscription is named as skipped by a source-wide run, refused by its own.
    dev.cli("subscriptions", "disable", healthy)
    source_run = dev.cli("replay", "--source", "github", "--since", "1h", "--status", "any", "--dry-run")
    assert source_run["matched"] == 3
    assert [s["subscription"] for s in source_run["skipped"]] == [healthy]
    refused = dev.cli("replay", "--subscription", healthy, "--since", "1h", check=False)
    assert refused.returncode == 1
    error = json.loads(refused.stderr)["error"]
    assert error["kind"] == "conflict" and f"relay subscriptions enable {healthy}" in error["message"]
    time.sleep(1)
    assert len(sink.received("/fail/6/down")) == before + 3, "no delivery repeated"


def test_bulk_replay_usage_errors_exit_2(dev):
    add_github_source(dev)
    sub = add_subscription(dev, "github", "http://127.0.0.1:9/x")["id"]
    cases = [
        (["replay", "--subscription", sub], "needs --since"),
        (["replay", "--since", "1h"], "--subscription ID or --source NAME"),
        (["replay", "evt_1", "--since", "1h"], "cannot be used with"),
        (["replay", "--subscription", sub, "--source", "github", "--since", "1h"], "cannot be used with"),
        (["replay", "--subscription", sub, "--since", "yesterday"], "RFC 3339"),
        (["replay", "--subscription", sub, "--since", "1h", "--status", "gone"], "invalid value"),
        (["replay", "--subscription", sub, "--since", "1h", "--type", "a*b"], "invalid event pattern"),
        (["events", "list", "--status", "dead"], "--subscription"),
        (["events", "list", "--since", "soon"], "RFC 3339"),
    ]
    for args, says in cases:
        result = dev.cli(*args, check=False)
        assert result.returncode == 2, (args, result.stderr)
        error = json.loads(result.stderr)["error"]
        assert error["kind"] == "usage", (args, error)
        assert says in error["message"] or says in error.get("usage", ""), (args, error)
    # Reversed range: the store is asked nothing it cannot answer; invalid, exit 1.
    result = dev.cli("replay", "--subscription", sub, "--since", "1h", "--until", "2h", check=False)
    assert result.returncode == 1
    assert json.loads(result.stderr)["error"]["kind"] == "invalid"
    result = dev.cli("replay", "--subscription", "sub_nope", "--since", "1h", check=False)
    assert (result.returncode, json.loads(result.stderr)["error"]["kind"]) == (1, "not_found")


def ask_on_a_terminal(relay_bin, data, answer, args):
    """Runs `relay --data-dir DATA ARGS` with stdin and stderr on a pseudo-terminal, typing
    `answer`; returns the exit code and what the terminal showed."""
    import os
    import pty
    import select
    import subprocess
    main_end, side = pty.openpty()
    proc = subprocess.Popen([str(relay_bin), "--data-dir", str(data), *args], stdin=side,
                            stderr=side, stdout=subprocess.PIPE)
    os.close(side)
    shown = b""
    typed = False
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main_end], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(main_end, 4096)
            except OSError:  # the process closed its end
                break
            if not chunk:
                break
            shown += chunk
            if not typed and b"[y/N]" in shown:
                os.write(main_end, answer.encode())
                typed = True
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=60)
    proc.stdout.close()
    os.close(main_end)
    return {"code": code, "terminal": shown.decode(errors="replace")}


def test_more_than_ten_thousand_deliveries_ask_for_yes(relay_bin, tmp_path):
    """10,001 stored events (written straight into the store's events table, as the fanout
    stores them): the dry run counts them, the run refuses without --yes when nobody can be
    asked, and --yes queues one delivery each."""
    data = tmp_path / "data"
    run_cli(relay_bin, data, "sources", "add", "github", "--provider", "github",
            "--secret", "gh-" + uuid.uuid4().hex)
    sub = run_cli(relay_bin, data, "subscriptions", "add", "--source", "github",
                  "--url", "http://127.0.0.1:9/x")["id"]
    now_ms = int(time.time() * 1000)
    with sqlite3.connect(data / "relay.db") as db:
        rows = []
        for n in range(10_001):
            at = now_ms - 600_000 + n
            # A UUIDv7 id carrying its time, as the receiver mints them.
            event_id = f"evt_{at:012x}7{uuid.uuid4().hex[13:]}"
            doc = {"id": event_id, "source": "github", "type": "push", "received_at": at,
                   "body": "{}", "body_encoding": "utf8"}
            rows.append((event_id, "github", at, now_ms // 1000 + 86_400, json.dumps(doc)))
        db.executemany("INSERT INTO events (id, source, received_at, expires_at, doc) "
                       "VALUES (?, ?, ?, ?, ?)", rows)
    dry = run_cli(relay_bin, data, "replay", "--subscription", sub, "--since", "1h",
                  "--status", "any", "--dry-run", timeout=300)
    assert dry["matched"] == 10_001 and dry["enqueued"] == 0
    assert len(dry["event_ids"]) == 20
    refused = run_cli(relay_bin, data, "replay", "--subscription", sub, "--since", "1h",
                      "--status", "any", check=False, timeout=300)
    assert refused.returncode == 2, refused.stderr
    message = json.loads(refused.stderr)["error"]["message"]
    assert "10001 deliveries match, more than 10000: pass --yes" in message
    with sqlite3.connect(data / "relay.db") as db:
        assert db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
    # On a terminal it asks; anything but yes sends nothing.
    asked = ask_on_a_terminal(relay_bin, data, answer="n\n", args=[
        "replay", "--subscription", sub, "--since", "1h", "--status", "any"])
    assert asked["code"] == 1, asked
    assert "10001 deliveries match, more than 10000. Send them? [y/N]" in asked["terminal"], asked
    assert "not confirmed: nothing sent" in asked["terminal"], asked
    with sqlite3.connect(data / "relay.db") as db:
        assert db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
    sent = run_cli(relay_bin, data, "replay", "--subscription", sub, "--since", "1h",
                   "--status", "any", "--yes", timeout=600)
    assert (sent["matched"], sent["enqueued"]) == (10_001, 10_001)
    with sqlite3.connect(data / "relay.db") as db:
        assert db.execute("SELECT COUNT(*) FROM messages WHERE queue = 'deliveries'").fetchone()[0] == 10_001
