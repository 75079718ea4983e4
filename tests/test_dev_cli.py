"""The admin CLI on the local store: listing, removing, enabling, and its exit codes
(0 success, 1 failure with {"error": {...}} on stderr under --json, 2 usage)."""

import json
import os
import subprocess

import pytest

from conftest import (
    accepted_id,
    add_subscription,
    child_env,
    free_port,
    new_secret,
    send_github,
    standard_request,
    wait_until,
)


KINDS = {"usage", "not_found", "conflict", "invalid", "unavailable", "internal"}


def assert_json_failure(result, *words, kind=None):
    """Exit 1 (2 for usage), nothing on stdout, a JSON error with a message and its class."""
    expected_exit = 2 if kind == "usage" else 1
    assert result.returncode == expected_exit, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    error = json.loads(result.stderr)["error"]
    assert isinstance(error, dict) and error["message"]
    assert error["kind"] in KINDS - {"internal"}, error
    if kind:
        assert error["kind"] == kind, error
    for word in words:
        assert word in error["message"], error
    return error


def test_read_commands_on_a_missing_data_dir_create_nothing(relay_bin, tmp_path):
    data_dir = tmp_path / "never-made"
    for args in (["sources", "list"], ["subscriptions", "list"], ["events", "list"], ["status"],
                 ["events", "show", "evt_1"], ["subscriptions", "disable", "sub_1"]):
        result = subprocess.run([str(relay_bin), "--data-dir", str(data_dir), *args, "--json"],
                                capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                env=child_env(), timeout=30)
        assert_json_failure(result, "no relay store", str(data_dir), kind="not_found")
        assert not data_dir.exists(), args


def test_sources_commands(cli):
    cli("sources", "add", "github", "--provider", "github", "--secret", "gh-secret-number-1")
    std_secret = new_secret(24)
    cli("sources", "add", "std", "--provider", "standard", "--secret", std_secret)
    cli("sources", "add", "custom", "--provider", "hmac", "--secret", "custom-hmac-secret",
        "--header", "X-Sig", "--prefix", "sha256=")
    listed = {s["name"]: s for s in cli("sources", "list")}
    assert {n: s["provider"] for n, s in listed.items()} == {
        "github": "github", "std": "standard", "custom": "hmac"}
    assert listed["github"]["secrets"] == 1
    text = json.dumps(listed)
    assert "gh-secret-number-1" not in text and std_secret not in text  # never printed

    updated = cli("sources", "update", "github", "--add-secret", "gh-secret-number-2",
                  "--tolerance", "60")
    assert updated["secrets"] == 2 and updated["tolerance_secs"] == 60
    updated = cli("sources", "update", "github", "--remove-secret", "gh-secret-number-1")
    assert updated["secrets"] == 1
    # A source keeps at least one secret.
    assert_json_failure(cli("sources", "update", "github", "--remove-secret", "gh-secret-number-2",
                            check=False), "secret", kind="invalid")

    assert cli("sources", "remove", "custom") == {"removed": "custom"}
    assert sorted(s["name"] for s in cli("sources", "list")) == ["github", "std"]

    # Failures: exit 1, JSON error on stderr, nothing on stdout.
    assert_json_failure(cli("sources", "add", "github", "--provider", "github", "--secret", "x",
                            check=False), "github", kind="conflict")
    assert_json_failure(cli("sources", "remove", "custom", check=False), "custom", kind="not_found")
    assert_json_failure(cli("sources", "add", "bad name", "--provider", "github", "--secret", "x",
                            check=False))
    for reserved in ("healthz", "metrics", "console"):
        assert_json_failure(cli("sources", "add", reserved, "--provider", "github", "--secret",
                                "x", check=False), f"{reserved} is reserved", kind="invalid")
    assert_json_failure(cli("sources", "add", "std2", "--provider", "standard", "--secret",
                            "not-whsec", check=False), "whsec_")
    assert_json_failure(cli("sources", "add", "h", "--provider", "hmac", "--secret",
                            "custom-hmac-secret", check=False), "--header")


def refused_secret(result, *words, secret):
    """A refused `sources add/update` secret: exit 1, the words in the message, the secret not."""
    error = assert_json_failure(result, *words)
    if secret.strip() not in ("", "whsec_"):  # a bare prefix is named by the message itself
        assert secret not in result.stderr, result.stderr
    return error


# One secret per provider that the relay must refuse, and words its message must hold.
WEAK_SOURCE_SECRETS = [
    # An empty Standard Webhooks key would let anyone sign; one byte is hardly better.
    ("standard", [], "whsec_", ["Standard Webhooks secret", "24 to 64 bytes", "holds 0"]),
    ("standard", [], "whsec_QQ==", ["24 to 64 bytes", "holds 1"]),
    ("standard", [], "whsec_" + "A" * 31 + "=", ["holds 23"]),
    ("standard", [], "whsec_not base64!", ["whsec_ followed by base64"]),
    # Without whsec_ the key must still hold 24 bytes.
    ("standard", [], "QQ==", ["24 to 64 bytes", "holds 1"]),
    ("stripe", [], "whsec_", ["whsec_ followed by the key", "Signing secret"]),
    ("stripe", [], "sk_live_not_an_endpoint_secret", ["whsec_", "Signing secret"]),
    ("github", [], "   ", ["secret is empty", "typed into GitHub"]),
    ("github", [], "s3cret", ["too short: 6 of at least 16", "typed into GitHub"]),
    ("shopify", [], "shopify-short", ["too short: 13 of at least 16", "client secret"]),
    ("slack", [], "abc123", ["too short: 6 of at least 16", "Signing Secret", "32 hex"]),
    ("twilio", [], "twilio-tok", ["too short: 10 of at least 16", "Auth Token"]),
    ("token", [], "Tk9", ["too short: 3 of at least 16", "token"]),
    ("hmac", ["--header", "X-Sig"], "Q", ["too short: 1 of at least 16"]),
    ("typeform", [], "tf-Qx9z", ["too short: 7 of at least 16", "Typeform"]),
]


@pytest.mark.parametrize("provider,extra,secret,words", WEAK_SOURCE_SECRETS,
                         ids=[f"{p}-{i}" for i, (p, *_rest) in enumerate(WEAK_SOURCE_SECRETS)])
def test_sources_add_refuses_weak_secrets(cli, provider, extra, secret, words):
    result = cli("sources", "add", "weak", "--provider", provider, "--secret", secret, *extra,
                 check=False)
    refused_secret(result, "--secret", *words, secret=secret)
    assert cli("sources", "list") == []


# Secrets as the providers issue them are accepted (the minimums refuse no real secret).
def test_sources_add_accepts_real_provider_secrets(cli):
    hex32 = "0123456789abcdef" * 2
    accepted = [
        ("standard", [], new_secret(24)),
        ("standard", [], new_secret(64)),
        ("stripe", [], "whsec_" + "x" * 32),
        ("github", [], "a" * 16),
        ("shopify", [], "shpss_" + hex32),
        ("slack", [], hex32),
        ("twilio", [], hex32),
        ("token", [], hex32),
        ("typeform", [], "my typeform secret"),
        ("hmac", ["--header", "X-Sig"], hex32),
    ]
    for n, (provider, extra, secret) in enumerate(accepted):
        cli("sources", "add", f"ok{n}", "--provider", provider, "--secret", secret, *extra)
    assert len(cli("sources", "list")) == len(accepted)


def test_sources_update_add_secret_uses_the_same_rules(cli):
    cli("sources", "add", "std", "--provider", "standard", "--secret", new_secret(32))
    cli("sources", "add", "gh", "--provider", "github", "--secret", "gh-secret-number-1")
    cli("sources", "add", "stripe", "--provider", "stripe", "--secret", "whsec_abcdef")
    for name, secret, words in [
        ("std", "whsec_", ["--add-secret", "Standard Webhooks secret", "holds 0"]),
        ("std", "whsec_QQ==", ["--add-secret", "holds 1"]),
        ("gh", "sh0rt-X", ["--add-secret", "too short: 7 of at least 16", "typed into GitHub"]),
        ("gh", " ", ["--add-secret", "secret is empty"]),
        ("stripe", "whsec_", ["--add-secret", "Signing secret"]),
    ]:
        result = cli("sources", "update", name, "--add-secret", secret, check=False)
        refused_secret(result, *words, secret=secret)
    # With several, the message says which one.
    result = cli("sources", "update", "gh", "--add-secret", "gh-secret-number-2", "--add-secret",
                 "t1ny", check=False)
    refused_secret(result, "--add-secret (number 2)", secret="t1ny")
    listed = {s["name"]: s["secrets"] for s in cli("sources", "list")}
    assert listed == {"std": 1, "gh": 1, "stripe": 1}, listed
    assert cli("sources", "update", "gh", "--add-secret", "gh-secret-number-2")["secrets"] == 2


def test_hmac_timestamp_header_must_be_signed(cli):
    args = ["--provider", "hmac", "--secret", "acme-secret-0123456789", "--header", "X-Sig",
            "--timestamp-header", "X-Ts"]
    result = cli("sources", "add", "acme", *args, "--signed-payload", "{body}", check=False)
    assert_json_failure(result, "no {timestamp}", "X-Ts", "stops no replay")
    result = cli("sources", "add", "acme", *args, "--signed-payload", "{id}.{body}", "--id-header",
                 "X-Id", check=False)
    assert_json_failure(result, "no {timestamp}")
    # The default payload with a timestamp header is {timestamp}.{body}: accepted.
    assert cli("sources", "add", "acme", *args)["name"] == "acme"
    cli("sources", "add", "acme2", *args, "--signed-payload", "v1:{timestamp}:{body}")
    assert sorted(s["name"] for s in cli("sources", "list")) == ["acme", "acme2"]


def test_subscriptions_commands(cli):
    cli("sources", "add", "github", "--provider", "github", "--secret", "gh-secret-number-1")
    cli("sources", "add", "other", "--provider", "github", "--secret", "gh-secret-number-1")
    secret = new_secret()
    a = cli("subscriptions", "add", "--source", "github", "--url", "https://example.com/a",
            "--events", "push, issues.*", "--secret", secret, "--header", "Authorization: Bearer t")
    assert a["secret"] == secret and a["events"] == ["push", "issues.*"]
    assert a["headers"] == ["Authorization"]  # names only, never values
    b = cli("subscriptions", "add", "--source", "other", "--url", "https://example.com/b")
    assert b["secret"].startswith("whsec_") and b["events"] == ["*"]

    everything = cli("subscriptions", "list")
    assert sorted(s["id"] for s in everything) == sorted([a["id"], b["id"]])
    assert all("secret" not in s for s in everything)
    assert secret not in json.dumps(everything) and "Bearer t" not in json.dumps(everything)
    [only] = cli("subscriptions", "list", "--source", "github")
    assert only["id"] == a["id"] and only["url"] == "https://example.com/a"
    assert cli("subscriptions", "list", "--source", "nobody") == []

    disabled = cli("subscriptions", "disable", a["id"])
    assert disabled["enabled"] is False and disabled["disabled_reason"]
    [listed] = cli("subscriptions", "list", "--source", "github")
    assert listed["enabled"] is False
    enabled = cli("subscriptions", "enable", a["id"])
    assert enabled["enabled"] is True and enabled["disabled_reason"] is None

    assert cli("subscriptions", "remove", b["id"]) == {"removed": b["id"]}
    assert [s["id"] for s in cli("subscriptions", "list")] == [a["id"]]

    assert_json_failure(cli("subscriptions", "remove", b["id"], check=False), b["id"],
                        kind="not_found")
    assert_json_failure(cli("subscriptions", "enable", "sub_nope", check=False), "sub_nope",
                        kind="not_found")
    assert_json_failure(cli("subscriptions", "rotate-secret", "sub_nope", check=False))
    assert_json_failure(cli("subscriptions", "add", "--source", "nobody", "--url",
                            "https://example.com/", check=False), "nobody")
    assert_json_failure(cli("subscriptions", "add", "--source", "github", "--url",
                            "ftp://example.com/", check=False))
    assert_json_failure(cli("subscriptions", "add", "--source", "github", "--url", "not a url",
                            check=False))
    assert_json_failure(cli("subscriptions", "add", "--source", "github", "--url",
                            "https://example.com/", "--secret", "plain", check=False))
    assert_json_failure(cli("subscriptions", "add", "--source", "github", "--url",
                            "https://example.com/", "--events", "iss*es", check=False), "pattern",
                        kind="invalid")
    assert_json_failure(cli("events", "show", "evt_nope", check=False), "evt_nope",
                        kind="not_found")
    assert_json_failure(cli("subscriptions", "rotate-secret", a["id"], "--keep-old", "soon",
                            check=False), "--keep-old", kind="usage")
    # Nothing was added by the failed commands.
    assert len(cli("subscriptions", "list")) == 1


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["sources"],
        ["sources", "add"],
        ["sources", "add", "x", "--provider", "nope", "--secret", "s"],
        ["subscriptions", "add", "--source", "x"],
        ["redrive", "--queue", "nowhere"],
        ["events", "list", "--limit", "many"],
        ["dev", "--listen", "not-an-address"],
    ],
    ids=lambda args: " ".join(args) or "(none)",
)
@pytest.mark.parametrize("json_flag", [False, True], ids=["text", "json"])
def test_usage_errors_exit_2(relay_bin, tmp_path, args, json_flag):
    argv = [str(relay_bin), "--data-dir", str(tmp_path / "data"), *args]
    if json_flag:
        argv.append("--json")
    result = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            env=child_env(), timeout=30)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.strip()


def test_usage_error_under_json_is_a_json_error(relay_bin, tmp_path):
    result = subprocess.run(
        [str(relay_bin), "--data-dir", str(tmp_path / "data"), "sources", "add", "--json"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, env=child_env(), timeout=30)
    assert result.returncode == 2
    assert json.loads(result.stderr)["error"]["kind"] == "usage"


def test_error_classes_on_the_aws_backend(relay_bin, tmp_path):
    """An endpoint that does not answer is `unavailable` (exit 1, the cause kept); --aws
    without a table is a usage error (exit 2)."""
    env = {k: v for k, v in child_env().items()
           if not k.startswith(("AWS_", "RELAY_", "MOTO_"))}
    env.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}", AWS_REGION="us-east-1",
               AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               RELAY_AWS_OPERATION_TIMEOUT_MS="2000")

    def relay(*args):
        return subprocess.run([str(relay_bin), *args, "--json"], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, env=env, timeout=120)

    down = relay("--aws", "--table", "relay-absent", "sources", "list")
    error = assert_json_failure(down, kind="unavailable")
    assert "127.0.0.1" in error["message"] or "connect" in error["message"].lower(), error
    assert_json_failure(relay("--aws", "sources", "list"), "--table", kind="usage")


def test_help_and_version(relay_bin):
    for args in (["--help"], ["--version"], ["dev", "--help"], ["subscriptions", "--help"]):
        result = subprocess.run([str(relay_bin), *args], capture_output=True, text=True,
                                env=child_env(), timeout=30)
        assert result.returncode == 0, (args, result.stderr)
        assert result.stdout.strip()


def test_admin_changes_reach_a_running_dev(dev, sink, sub_secret):
    """Admin commands in another process take effect on a running `relay dev`."""
    one, two = "gh-secret-number-1", "gh-secret-number-2"
    dev.cli("sources", "add", "github", "--provider", "github", "--secret", one)
    add_subscription(dev, "github", f"{sink.url}/ok/admin", secret=sub_secret)
    accepted_id(send_github(dev, one)[0])

    # An added inbound secret verifies (within the dev's short cache time), the old one still too.
    dev.cli("sources", "update", "github", "--add-secret", two)
    wait_until(lambda: send_github(dev, two)[0].status_code == 202, timeout=10,
               message="the added source secret")
    accepted_id(send_github(dev, one)[0])
    # A removed one no longer does.
    dev.cli("sources", "update", "github", "--remove-secret", one)
    wait_until(lambda: send_github(dev, one)[0].status_code == 401, timeout=10,
               message="the removed source secret to be refused")

    # A source with subscriptions is removed only with --cascade (they go with it).
    assert_json_failure(dev.cli("sources", "remove", "github", check=False), "1 subscription(s)",
                        "--cascade", kind="conflict")
    assert len(dev.cli("subscriptions", "list")) == 1
    dev.cli("sources", "remove", "github", "--cascade")
    assert dev.cli("subscriptions", "list") == []
    # A removed source is unknown.
    assert [s["name"] for s in dev.cli("sources", "list")] == []
    wait_until(lambda: send_github(dev, two)[0].status_code == 404, timeout=10,
               message="the removed source to answer 404")
    events = wait_until(lambda: (lambda e: e if len(e) >= 3 else None)(
        dev.cli("events", "list")["events"]), message="the accepted events listed")
    assert all(e["source"] == "github" for e in events)


def test_events_list_pages_and_filters(dev):
    """`events list` pages newest first with --limit/--before and filters by --source/--type."""
    secret = "gh-secret-number-1"
    dev.cli("sources", "add", "github", "--provider", "github", "--secret", secret)
    dev.cli("sources", "add", "other", "--provider", "github", "--secret", secret)
    sent = []
    for n in range(5):
        source = "other" if n == 2 else "github"
        event = "push" if n % 2 else "issues"
        sent.append(accepted_id(send_github(dev, secret, event=event, source=source)[0]))
    wait_until(lambda: len(dev.cli("events", "list")["events"]) == 5,
               message="the five events to be stored")
    everything = dev.cli("events", "list")
    assert everything["next_cursor"] is None
    # Event ids are time-ordered, so newest first is the reverse of the sending order.
    assert [e["id"] for e in everything["events"]] == sent[::-1]

    pages, cursor = [], None
    while True:
        assert len(pages) < 10, pages
        page = dev.cli("events", "list", "--limit", "2", *(["--before", cursor] if cursor else []))
        pages.append([e["id"] for e in page["events"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [sent[4:2:-1], sent[2:0:-1], sent[0:1]]

    text = dev.cli("events", "list", "--limit", "2", json=False).stdout
    assert sent[4] in text and sent[2] not in text
    assert f"next page: --before {dev.cli('events', 'list', '--limit', '2')['next_cursor']}" in text

    by_source = dev.cli("events", "list", "--source", "other")["events"]
    assert [e["id"] for e in by_source] == [sent[2]]
    types = {e["id"]: e["type"] for e in everything["events"]}
    push_type = types[sent[3]]
    assert types[sent[1]] == push_type and types[sent[4]] != push_type
    by_type = dev.cli("events", "list", "--source", "github", "--type", push_type, "--limit", "1")
    assert [e["id"] for e in by_type["events"]] == [sent[3]]
    rest = dev.cli("events", "list", "--source", "github", "--type", push_type,
                   "--before", by_type["next_cursor"])
    assert ([e["id"] for e in rest["events"]], rest["next_cursor"]) == ([sent[1]], None)

    refused = dev.cli("events", "list", "--before", "not-a-cursor", check=False)
    assert refused.returncode == 2, (refused.returncode, refused.stderr)


def test_a_second_dev_on_the_same_data_dir_refuses_to_start(dev, relay_bin):
    result = subprocess.run(
        [str(relay_bin), "dev", "--listen", f"127.0.0.1:{free_port()}", "--data-dir",
         str(dev.data_dir), "--json"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, env=child_env(), timeout=60)
    error = assert_json_failure(result, "another relay dev is running", str(dev.data_dir),
                                kind="conflict")
    assert f"pid {dev.proc.pid}" in error["message"], error
    assert dev.cli("sources", "list") == []  # the first one is untouched


@pytest.mark.parametrize("shell,marker", [("bash", "complete -F"), ("zsh", "#compdef relay"),
                                          ("fish", "complete -c relay")])
def test_completions(relay_bin, shell, marker):
    result = subprocess.run([str(relay_bin), "completions", shell], capture_output=True,
                            text=True, stdin=subprocess.DEVNULL, timeout=30)
    assert result.returncode == 0, result.stderr
    assert marker in result.stdout
    # Subcommands and their flags are completed.
    for word in ("replay", "subscriptions", "since", "dry-run"):
        assert word in result.stdout, (shell, word)
    bad = subprocess.run([str(relay_bin), "completions", "tcsh"], capture_output=True,
                         text=True, stdin=subprocess.DEVNULL, timeout=30)
    assert bad.returncode == 2


def test_man_page(relay_bin):
    result = subprocess.run([str(relay_bin), "man"], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=30)
    assert result.returncode == 0, result.stderr
    assert ".TH relay" in result.stdout
    assert "replay" in result.stdout and "Webhook relay" in result.stdout


@pytest.mark.parametrize("args", [["man"], ["completions", "bash"], ["sources", "list"],
                                  ["status"], ["events", "list", "--limit", "5"]])
def test_a_closed_stdout_ends_quietly_with_exit_0(relay_bin, tmp_path, args):
    """`relay ... | head -1` with the reader gone before the command writes: no panic, exit 0."""
    data = tmp_path / "data"
    subprocess.run([str(relay_bin), "--data-dir", str(data), "sources", "add", "gh",
                    "--provider", "github", "--secret", "gh-closed-stdout-0123456789"],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=30)
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will read: the first write fails with EPIPE
    try:
        result = subprocess.run([str(relay_bin), "--data-dir", str(data), *args],
                                stdout=write_end, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL, timeout=30)
    finally:
        os.close(write_end)
    assert result.returncode == 0, result.stderr
    assert "panicked" not in result.stderr and "Broken pipe" not in result.stderr, result.stderr


def test_backend_flags_under_their_own_heading(relay_bin):
    result = subprocess.run([str(relay_bin), "events", "list", "--help"], capture_output=True,
                            text=True, stdin=subprocess.DEVNULL, timeout=30)
    assert result.returncode == 0
    text = result.stdout
    heading = text.index("Backend (local store, or a deployed stack with --aws):")
    for flag in ("--data-dir", "--aws", "--stack", "--table", "--events-queue-url"):
        assert text.index(flag) > heading, flag
    # The command's own flags come first, each with a help line.
    for flag in ("--subscription", "--status", "--since", "--until", "--type"):
        assert text.index(flag) < heading, flag


def test_a_weak_secret_in_use_is_kept_with_a_flag_and_warned_about(dev):
    refused = dev.cli("sources", "add", "old", "--provider", "github", "--secret", "s3cret",
                      check=False)
    assert refused.returncode == 1
    message = json.loads(refused.stderr)["error"]["message"]
    assert "--allow-weak-secret" in message and "s3cret" not in message
    dev.cli("sources", "add", "old", "--provider", "github", "--secret", "s3cret",
            "--allow-weak-secret")
    # It verifies like any other secret.
    response, _, _ = send_github(dev, "s3cret", source="old")
    accepted_id(response)
    status = dev.cli("status")
    assert status["weak_secrets"] == [{"source": "old", "secrets": 1}]
    text = dev.cli("status", json=False).stdout
    assert "warning: source old has 1 secret(s) weaker than its provider issues" in text
    assert "s3cret" not in text
    # Rotated to a strong secret, the warning goes.
    dev.cli("sources", "update", "old", "--add-secret", "gh-a-strong-secret-0123456789",
            "--remove-secret", "s3cret")
    assert dev.cli("status")["weak_secrets"] == []


def test_a_standard_secret_without_whsec_is_accepted(dev):
    key = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    dev.cli("sources", "add", "std", "--provider", "standard", "--secret", key)
    body = json.dumps({"type": "invoice.paid", "n": 1}).encode()
    # The official library signs with the whsec_ form; both name the same key.
    response = dev.post("/std", body, standard_request(f"whsec_{key}", body))
    accepted_id(response)
    short = dev.cli("sources", "add", "std2", "--provider", "standard", "--secret", "QQ==",
                    check=False)
    assert short.returncode == 1 and "holds 1" in json.loads(short.stderr)["error"]["message"]
