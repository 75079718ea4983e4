"""Content filters in `relay dev`: a filtered subscription gets the events its filter matches
and not the others (a non-JSON body included), `subscriptions test-filter` says why, and a bad
filter is refused with exit 2 and nothing stored."""

import json
from urllib.parse import urlencode

from conftest import accepted_id, add_github_source, add_subscription, send_github

GITHUB_SECRET = "gh-test-secret-0123456789"
BUG_FILTER = {"body": {"action": "opened", "issue": {"labels": {"name": "bug"}}}}


def issue(action, *labels):
    return json.dumps({"action": action,
                       "issue": {"number": 7, "labels": [{"name": n} for n in labels]}}).encode()


def test_a_filtered_subscription_gets_only_matching_events(dev, sink, sub_secret, tmp_path):
    add_github_source(dev, secret=GITHUB_SECRET)
    filtered = dev.cli("subscriptions", "add", "--source", "github",
                       "--url", f"{sink.url}/ok/filtered", "--events", "issues.*",
                       "--secret", sub_secret, "--filter", json.dumps(BUG_FILTER))
    # From a file, on headers only: matches whatever the body is.
    header_filter = tmp_path / "header-filter.json"
    header_filter.write_text(json.dumps(
        {"headers": {"X-Relay-Source": "github",
                     "Content-Type": {"$startsWith": "application/"}}}, indent=2))
    by_header = dev.cli("subscriptions", "add", "--source", "github",
                        "--url", f"{sink.url}/ok/by-header", "--secret", sub_secret,
                        "--filter-file", str(header_filter))
    everything = add_subscription(dev, "github", f"{sink.url}/ok/all", secret=sub_secret)

    listed = {s["id"]: s for s in dev.cli("subscriptions", "list")}
    assert listed[filtered["id"]]["filter"] == BUG_FILTER
    assert listed[by_header["id"]]["filter"]["headers"]["X-Relay-Source"] == "github"
    assert listed[everything["id"]]["filter"] is None
    table = dev.cli("subscriptions", "list", json=False).stdout
    assert '"action":"opened"' in table, table

    sent = {}
    for name, body, content_type in (
        ("bug", issue("opened", "p1", "bug"), "application/json"),
        ("docs", issue("opened", "docs"), "application/json"),
        ("closed", issue("closed", "bug"), "application/json"),
        # GitHub's form content type: the body is payload=<JSON>, not JSON, so it never
        # matches a filter that reads the body.
        ("form", urlencode({"payload": issue("opened", "bug")}).encode(),
         "application/x-www-form-urlencoded"),
    ):
        response, _, _ = send_github(dev, GITHUB_SECRET, body=body, content_type=content_type)
        sent[name] = accepted_id(response)

    # An event's round is over once the attempts of every subscription that takes it are
    # logged (they may be written one after another); a filtered-out one has none.
    for name, event_id in sent.items():
        expected = {everything["id"], by_header["id"]} | ({filtered["id"]} if name == "bug"
                                                          else set())
        attempts = dev.wait_attempts(
            event_id, lambda a: expected <= {x["subscription_id"] for x in a},
            message=f"the {name} event's round")
        assert {a["subscription_id"] for a in attempts} == expected, (name, attempts)
    assert len(sink.wait_for("/ok/all", 4)) == 4
    [delivered] = sink.wait_for("/ok/filtered", 1)
    assert delivered["headers"]["webhook-id"] == sent["bug"]
    assert json.loads(delivered["body"]) == json.loads(issue("opened", "p1", "bug"))
    assert len(sink.received("/ok/filtered")) == 1

    # test-filter answers as the fanout decided, and says which part failed.
    answer = dev.cli("subscriptions", "test-filter", filtered["id"], "--event", sent["bug"])
    assert answer == {"subscription": filtered["id"], "event": sent["bug"], "matched": True,
                      "reasons": []}
    answer = dev.cli("subscriptions", "test-filter", filtered["id"], "--event", sent["closed"])
    assert answer["matched"] is False
    assert answer["reasons"] == ['filter: body.action: expected "opened", found "closed"']
    answer = dev.cli("subscriptions", "test-filter", filtered["id"], "--event", sent["docs"])
    assert "no element of the array at body.issue.labels" in answer["reasons"][0], answer
    answer = dev.cli("subscriptions", "test-filter", filtered["id"], "--event", sent["form"])
    assert answer["reasons"] == ["filter: the body is not JSON, and the filter reads the body"]
    body_file = tmp_path / "body.json"
    body_file.write_bytes(issue("opened", "bug"))
    answer = dev.cli("subscriptions", "test-filter", filtered["id"], "--body", str(body_file))
    assert answer["matched"] is True and answer["event"] is None
    text = dev.cli("subscriptions", "test-filter", filtered["id"], "--event", sent["closed"],
                   json=False).stdout
    assert text.startswith(f"no match: subscription {filtered['id']} does not take"), text
    assert 'body.action: expected "opened", found "closed"' in text


def test_a_bad_filter_exits_2_naming_where_and_stores_nothing(dev, tmp_path):
    add_github_source(dev, secret=GITHUB_SECRET)
    cases = [
        ('{"body":{"issue":{"labels":{"$in":"bug"}}}}',
         "at body.issue.labels.$in: expected an array of values, found a string"),
        ('{"body":{"n":{"$gt":true}}}', "at body.n.$gt: expected a number or a string"),
        ('{"body":{"n":{"$regex":"x"}}}', "at body.n.$regex: unknown operator"),
        ('{"bdy":{"a":1}}', "at bdy: expected body, headers, $and, $or or $not"),
        ('{"body":', "not valid JSON"),
        ('{"body":' * 20 + '1' + '}' * 20, "nested too deeply"),
    ]
    for text, message in cases:
        result = dev.cli("subscriptions", "add", "--source", "github",
                         "--url", "http://127.0.0.1:9/ok", "--filter", text, check=False)
        assert result.returncode == 2, (text, result.returncode, result.stderr)
        assert result.stdout == ""
        error = json.loads(result.stderr)["error"]
        assert error["kind"] == "usage" and message in error["message"], (text, error)
    missing = dev.cli("subscriptions", "add", "--source", "github", "--url", "http://127.0.0.1:9/",
                      "--filter-file", str(tmp_path / "nope.json"), check=False)
    assert missing.returncode == 2 and "nope.json" in missing.stderr
    both = dev.cli("subscriptions", "add", "--source", "github", "--url", "http://127.0.0.1:9/",
                   "--filter", "{}", "--filter-file", str(tmp_path / "nope.json"), check=False)
    assert both.returncode == 2
    assert dev.cli("subscriptions", "list") == []
    # test-filter needs --event or --body, and a known subscription and event.
    assert dev.cli("subscriptions", "test-filter", "sub_1", check=False).returncode == 2
    result = dev.cli("subscriptions", "test-filter", "sub_1", "--event", "evt_1", check=False)
    assert result.returncode == 1 and json.loads(result.stderr)["error"]["kind"] == "not_found"
