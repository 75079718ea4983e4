"""GitHub deliveries from a published corpus of real payloads (npm @octokit/webhooks-examples),
signed by GitHub's @octokit/webhooks-methods, through `relay dev` in both content types a GitHub
hook offers (`json` and `form`): each accepted, typed as docs/providers.md says, delivered
byte-identical with its content type and the relay's Standard Webhooks signature (verified by
the official library in tests/sink.py). And the two `form` bodies GitHub never sends, refused
with 400s that say why, with nothing stored or delivered."""

import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import github_corpus as corpus
from conftest import accepted_id, add_github_source, add_subscription

# Requests in flight at once: enough to keep `relay dev` busy, few enough for a 2-core machine.
CONCURRENCY = 6


def send_all(dev, source, items):
    """POSTs every delivery (bounded concurrency); (status, event id or the answer) for each."""
    def send(delivery):
        response = dev.post(f"/{source}", delivery.body, delivery.headers(), timeout=120)
        if response.status_code == 202:
            return 202, response.json()["id"]
        return response.status_code, response.text

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        return list(pool.map(send, items))


def test_every_corpus_example_in_both_content_types(dev, sink, sub_secret, node_modules, octokit):
    secret = add_github_source(dev)
    add_subscription(dev, "github", f"{sink.url}/ok/corpus", secret=sub_secret)
    pairs = corpus.examples(node_modules)
    items = corpus.sign(octokit, secret, corpus.deliveries(pairs))

    answers = send_all(dev, "github", items)
    accepted = sum(1 for status, _ in answers if status == 202)
    # Generous, load-proportional room: a debug build on a busy 2-core machine.
    received = sink.wait_for("/ok/corpus", accepted, timeout=60 + 0.5 * accepted)
    counts, problems = corpus.check_deliveries(items, answers, received, sub_secret)
    print(corpus.summary("relay dev", counts))

    assert not problems, "\n".join(problems[:40])
    event_types = len({event for event, _ in pairs})
    for kind in corpus.CONTENT_TYPES:
        c = counts[kind]
        assert (c["examples"], c["event_types"]) == (len(pairs), event_types), c
        assert c["accepted"] == c["typed_right"] == c["byte_identical"] == len(pairs), c
    # The corpus holds both kinds of typing (with an action and without).
    assert any("." in d.expected_type for d in items)
    assert any("." not in d.expected_type for d in items)


def test_form_bodies_without_a_json_payload_are_400(dev, sink, sub_secret, octokit):
    secret = add_github_source(dev)
    add_subscription(dev, "github", f"{sink.url}/ok/gh", secret=sub_secret)
    form = "application/x-www-form-urlencoded"
    refused = [
        ("action=opened&number=1", "form body has no payload field"),
        (urlencode({"payload": "action=opened"}), "the form field payload is not JSON: "),
    ]
    good = urlencode({"payload": '{"action":"opened","issue":{"number":1}}'})
    signatures = octokit([(secret, body) for body, _ in refused] + [(secret, good)])

    def headers(signature):
        return {"X-Hub-Signature-256": signature, "X-GitHub-Event": "issues",
                "X-GitHub-Delivery": str(uuid.uuid4()), "Content-Type": form}

    for (body, why), signature in zip(refused, signatures[:-1], strict=True):
        response = dev.post("/github", body.encode(), headers(signature))
        assert response.status_code == 400, (body, response.status_code, response.text)
        assert response.json()["error"].startswith(why), (body, response.text)
        assert secret not in response.text

    # A signed form with its payload goes through after them: it is the only event stored and
    # the only delivery, so the refused ones left nothing behind.
    sentinel = accepted_id(dev.post("/github", good.encode(), headers(signatures[-1])))
    sink.wait_for("/ok/gh", 1)
    dev.wait_attempts(sentinel, lambda attempts: len(attempts) == 1)
    assert [e["id"] for e in dev.cli("events", "list")["events"]] == [sentinel]
    got = sink.received("")
    assert [g["headers"]["webhook-id"] for g in got] == [sentinel], got
    assert got[0]["headers"]["x-relay-event-type"] == "issues.opened"
    assert got[0]["body"] == good.encode() and got[0]["headers"]["content-type"] == form
    assert got[0]["verified_with"] == [sub_secret]
