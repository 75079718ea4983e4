"""Real GitHub webhook payloads for the end-to-end tests: the octokit corpus (npm
@octokit/webhooks-examples, `api.github.com/index.json`: one entry per event with its `examples`),
each example made into the delivery GitHub sends in either content type of a hook, and signed
by GitHub's @octokit/webhooks-methods (the `octokit` fixture).

- `json`: the body is the event, `Content-Type: application/json`;
- `form`: the body is `payload=<the event, URL-encoded>`,
  `Content-Type: application/x-www-form-urlencoded`.

Either way the relay types it `X-GitHub-Event` + `.` + the event's top-level `action` when that
is a string, else `X-GitHub-Event` (docs/providers.md), and delivers the body byte-identical
with the same content type.
"""

import json
import uuid
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlencode

CONTENT_TYPES = {
    "json": "application/json",
    "form": "application/x-www-form-urlencoded",
}


@dataclass
class Delivery:
    """One corpus example as GitHub delivers it in one content type."""

    event: str
    kind: str  # a key of CONTENT_TYPES
    text: str  # the body as text, as the signing library takes it
    expected_type: str
    guid: str
    signature: str = ""

    @property
    def body(self):
        return self.text.encode()

    @property
    def content_type(self):
        return CONTENT_TYPES[self.kind]

    def headers(self):
        return {
            "X-Hub-Signature-256": self.signature,
            "X-GitHub-Event": self.event,
            "X-GitHub-Delivery": self.guid,
            "User-Agent": "GitHub-Hookshot/corpus",
            "Content-Type": self.content_type,
        }


def examples(node_modules):
    """Every (event name, example) of the corpus, in its order."""
    path = node_modules / "@octokit" / "webhooks-examples" / "api.github.com" / "index.json"
    return [
        (entry["name"], example)
        for entry in json.loads(path.read_text())
        for example in entry["examples"]
    ]


def expected_type(event, example):
    action = example.get("action")
    return f"{event}.{action}" if isinstance(action, str) else event


def deliveries(pairs, kinds=tuple(CONTENT_TYPES)):
    """Each example in each content type of `kinds`, unsigned. The JSON is compact UTF-8, as
    GitHub sends it."""
    out = []
    for event, example in pairs:
        text = json.dumps(example, ensure_ascii=False, separators=(",", ":"))
        for kind in kinds:
            body = text if kind == "json" else urlencode({"payload": text})
            out.append(Delivery(event, kind, body, expected_type(event, example), str(uuid.uuid4())))
    return out


def sign(octokit, secret, items):
    """Signs every delivery with @octokit/webhooks-methods (one node process)."""
    for delivery, signature in zip(items, octokit([(secret, d.text) for d in items]), strict=True):
        delivery.signature = signature
    return items


def sample(pairs, count):
    """`count` examples spread evenly over the corpus (deterministic), so that many events and
    both kinds of typing (with and without an action) are in it."""
    step = max(1, len(pairs) // count)
    return pairs[::step][:count]


def check_deliveries(items, answers, received, sub_secret):
    """Per content type: examples, event types, accepted, typed right, delivered byte-identical
    (same body, same content type, the relay's Standard Webhooks signature verified).
    `answers`: (status, event id when 202 else the answer's text) per delivery; `received`: the
    sink's requests.
    Returns ({kind: counts}, [problems])."""
    by_id = {}
    for got in received:
        by_id.setdefault(got["headers"].get("webhook-id"), []).append(got)
    counts = {}
    problems = []
    for kind in CONTENT_TYPES:
        mine = [(d, a) for d, a in zip(items, answers, strict=True) if d.kind == kind]
        if not mine:
            continue
        c = Counter(examples=len(mine), event_types=len({d.event for d, _ in mine}))
        for delivery, (status, event_id) in mine:
            label = f"{kind} {delivery.event} ({delivery.expected_type})"
            if status != 202:
                problems.append(f"{label}: answered {status} {event_id}")
                continue
            c["accepted"] += 1
            copies = by_id.get(event_id, [])
            if len(copies) != 1:
                problems.append(f"{label}: {len(copies)} deliveries of {event_id}")
                continue
            got = copies[0]
            typed = got["headers"].get("x-relay-event-type")
            if typed == delivery.expected_type:
                c["typed_right"] += 1
            else:
                problems.append(f"{label}: typed {typed!r}")
            same = (
                got["body"] == delivery.body
                and got["headers"].get("content-type") == delivery.content_type
                and got["verified_with"] == [sub_secret]
            )
            if same:
                c["byte_identical"] += 1
            else:
                problems.append(
                    f"{label}: body equal {got['body'] == delivery.body}, content-type "
                    f"{got['headers'].get('content-type')!r}, verified {bool(got['verified_with'])}"
                )
        counts[kind] = c
    return counts, problems


def summary(where, counts):
    return "\n".join(
        f"{where} {kind}: {c['examples']} examples, {c['event_types']} event types, "
        f"{c['accepted']} accepted, {c['typed_right']} typed right, "
        f"{c['byte_identical']} delivered byte-identical"
        for kind, c in counts.items()
    )
