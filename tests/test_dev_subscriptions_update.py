"""`relay subscriptions update` in `relay dev`: the URL, event types, filter and headers change,
the id and the signing secret stay (the subscriber keeps verifying with the secret it has), bad
values are refused with nothing written, and a destination the relay would refuse is refused."""

import json

from standardwebhooks.webhooks import Webhook

from conftest import accepted_id, add_github_source, add_subscription, send_github

GITHUB_SECRET = "gh-test-secret-0123456789"


def issue(action):
    return json.dumps({"action": action, "issue": {"number": 3}}).encode()


def test_update_keeps_id_and_secret(dev, sink, sub_secret):
    add_github_source(dev, secret=GITHUB_SECRET)
    sub = add_subscription(dev, "github", f"{sink.url}/ok/old", events="push", secret=sub_secret)

    updated = dev.cli("subscriptions", "update", sub["id"], "--url", f"{sink.url}/ok/new",
                      "--events", "issues.*", "--filter", '{"body":{"action":"opened"}}',
                      "--header", "X-Team: payments")
    assert updated["id"] == sub["id"]
    assert updated["url"] == f"{sink.url}/ok/new"
    assert updated["events"] == ["issues.*"]
    assert updated["filter"] == {"body": {"action": "opened"}}
    assert updated["headers"] == ["X-Team"]
    assert updated["secrets"] == 1
    [listed] = [s for s in dev.cli("subscriptions", "list") if s["id"] == sub["id"]]
    assert listed == updated

    # Takes every event: once its attempt is logged, the event's round is over.
    witness = add_subscription(dev, "github", f"{sink.url}/ok/witness", secret=sub_secret)["id"]
    opened = accepted_id(send_github(dev, GITHUB_SECRET, body=issue("opened"))[0])
    closed = accepted_id(send_github(dev, GITHUB_SECRET, body=issue("closed"))[0])
    [got] = sink.wait_for("/ok/new", 1)
    # The secret the subscriber was given at `add` still verifies: update kept it.
    Webhook(sub_secret).verify(got["body"], got["headers"])
    assert got["headers"]["webhook-id"] == opened
    assert got["headers"]["x-team"] == "payments"
    assert sink.received("/ok/old") == []
    attempts = dev.wait_attempts(closed, lambda a: any(x["subscription_id"] == witness
                                                       for x in a))
    assert {a["subscription_id"] for a in attempts} == {witness}, "filtered out: no attempt"

    # Removing the filter and the headers.
    cleared = dev.cli("subscriptions", "update", sub["id"], "--no-filter", "--no-headers")
    assert cleared["filter"] is None and cleared["headers"] == []
    assert cleared["url"] == updated["url"] and cleared["events"] == ["issues.*"]


def test_update_refuses_bad_values_and_writes_nothing(dev, sink, sub_secret):
    add_github_source(dev, secret=GITHUB_SECRET)
    sub = add_subscription(dev, "github", f"{sink.url}/ok/a", secret=sub_secret)
    before = [s for s in dev.cli("subscriptions", "list") if s["id"] == sub["id"]]

    def refused(*args, code, kind):
        result = dev.cli("subscriptions", "update", *args, check=False)
        assert result.returncode == code, (args, result.stderr)
        error = json.loads(result.stderr)["error"]
        assert error["kind"] == kind, (args, error)
        return error["message"]

    assert "nothing to change" in refused(sub["id"], code=2, kind="usage")
    assert "--filter" in refused(sub["id"], "--filter", '{"body":{"n":{"$gt":true}}}',
                                 code=2, kind="usage")
    refused(sub["id"], "--filter", "{}", "--no-filter", code=2, kind="usage")
    assert "http or https" in refused(sub["id"], "--url", "ftp://x.example/", code=1,
                                      kind="invalid")
    refused(sub["id"], "--events", "is*ues", code=1, kind="invalid")
    assert "no subscription sub_nope" in refused("sub_nope", "--events", "push", code=1,
                                                 kind="not_found")
    after = [s for s in dev.cli("subscriptions", "list") if s["id"] == sub["id"]]
    assert after == before

    # Where private destinations are denied, a new URL is checked as `add` checks it.
    dev.stop()
    dev.args = ["--deny-private-destinations"]
    dev.start()
    message = refused(sub["id"], "--url", f"http://localhost:{sink.port}/ok/b", code=1,
                      kind="invalid")
    assert "localhost resolves to" in message and "--deny-private-destinations" in message
