"""`relay reconcile` on the local backend: the real HTTP client against loopback stand-ins of
GitHub's deliveries API and Stripe's events API (tests/standins/, which cite the API reference
pages they follow), through `relay dev`.

Each test sends events through the stand-in, drops N of them on purpose before the receiver (the
provider "sent" them, the relay never saw them), and checks that reconcile finds and recovers
exactly those N, that a second run recovers nothing, that a dry run changes nothing, and the
401 and 429 paths.
"""

import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import run_cli, wait_until
from standins.github_api import GithubApi
from standins.stripe_api import StripeApi

HOOK = "repos/octo/hello-world/hooks/42"
APP_HOOK = "app/hook"


def events_of(dev, source):
    listed = dev.cli("events", "list", "--source", source, "--limit", "1000")
    return listed["events"] if isinstance(listed, dict) else listed


def sources_by_name(dev):
    listed = dev.cli("sources", "list")
    return {s["name"]: s for s in (listed["sources"] if isinstance(listed, dict) else listed)}


def reconcile(dev, source, *args, check=True):
    result = run_cli(dev.relay_bin, dev.data_dir, "reconcile", source, *args, check=False)
    if check:
        assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result


def findings(result):
    import json
    return json.loads(result.stdout)


@pytest.fixture
def github(dev, octokit, monkeypatch):
    secret = f"gh-{uuid.uuid4().hex}"
    token = f"ghp_{uuid.uuid4().hex}"
    dev.cli("sources", "add", "gh", "--provider", "github", "--secret", secret)
    api = GithubApi(token, HOOK, f"{dev.url}/gh", secret, octokit)
    monkeypatch.setenv("RELAY_TEST_GITHUB_TOKEN", token)
    dev.cli("sources", "update", "gh", "--reconcile-credential", "env:RELAY_TEST_GITHUB_TOKEN",
            "--reconcile-api-url", api.url, "--github-hook", HOOK)
    yield api
    api.close()


def app_key():
    """A new RSA key for a test GitHub App: (PKCS#1 PEM as GitHub hands it out, PKCS#8 PEM,
    public key PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pkcs1 = key.private_bytes(serialization.Encoding.PEM,
                              serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption()).decode()
    pkcs8 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return pkcs1, pkcs8, public


def key_lines(pem):
    """The base64 lines of a PEM: what must never be printed."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


@pytest.fixture
def github_app(dev, octokit):
    """A GitHub App's webhook (app/hook): the credential is the App's private key PEM, in a file
    in the data dir."""
    secret = f"gh-{uuid.uuid4().hex}"
    app_id = f"Iv23li{uuid.uuid4().hex[:14]}"
    pkcs1, pkcs8, public = app_key()
    dev.cli("sources", "add", "ghapp", "--provider", "github", "--secret", secret)
    api = GithubApi(None, APP_HOOK, f"{dev.url}/ghapp", secret, octokit, app=(app_id, public))
    api.app_id, api.key_pkcs1, api.key_pkcs8 = app_id, pkcs1, pkcs8
    (dev.data_dir / "github-app.pem").write_text(pkcs1)
    dev.cli("sources", "update", "ghapp", "--reconcile-credential", "file:github-app.pem",
            "--reconcile-api-url", api.url, "--github-hook", APP_HOOK, "--github-app-id", app_id)
    yield api
    api.close()


@pytest.fixture
def stripe_api(dev):
    secret = "whsec_" + uuid.uuid4().hex
    key = f"sk_test_{uuid.uuid4().hex}"
    dev.cli("sources", "add", "st", "--provider", "stripe", "--secret", secret)
    api = StripeApi(key, f"{dev.url}/st", secret)
    # The key from a file in the data dir.
    (dev.data_dir / "stripe.key").write_text(key + "\n")
    dev.cli("sources", "update", "st", "--reconcile-credential", "file:stripe.key",
            "--reconcile-api-url", api.url)
    yield api
    api.close()


def send_github(api, count, dropped):
    """Sends `count` deliveries, dropping those at the indexes in `dropped`; returns the guids
    of the dropped ones."""
    lost = []
    for i in range(count):
        guid = api.send("issues", {"action": "opened", "issue": {"number": i}}, drop=i in dropped)
        if i in dropped:
            lost.append(guid)
    return lost


def test_github_dropped_deliveries_are_redelivered_once(dev, github):
    lost = send_github(github, 8, dropped={1, 4, 6})
    wait_until(lambda: len(events_of(dev, "gh")) == 5, message="5 delivered events")

    dry = findings(reconcile(dev, "gh", "--dry-run"))
    print("dry run:", dry)
    assert (dry["seen"], dry["queued"], dry["dry_run"]) == (8, 5, True), dry
    assert sorted(dry["missing"]) == sorted(lost)
    assert dry["recovered"] == []
    assert github.redeliveries == [], "a dry run asks for nothing"
    assert len(events_of(dev, "gh")) == 5

    first = findings(reconcile(dev, "gh"))
    print("first run:", first)
    assert sorted(first["missing"]) == sorted(lost)
    assert sorted(first["recovered"]) == sorted(lost)
    assert first["failed"] == [] and "stopped" not in first
    # Each redelivery arrived signed through the receiver and was queued (202); the stand-in
    # sends it after answering the request, as GitHub does.
    wait_until(lambda: len(github.redeliveries) == 3, message="3 redeliveries sent")
    assert sorted(status for _, status in github.redeliveries) == [202, 202, 202]
    wait_until(lambda: len(events_of(dev, "gh")) == 8, message="8 events after reconcile")

    second = findings(reconcile(dev, "gh"))
    print("second run:", second)
    assert (second["seen"], second["queued"]) == (8, 8), second
    assert second["missing"] == [] and second["recovered"] == []
    assert len(github.redeliveries) == 3
    assert len(events_of(dev, "gh")) == 8
    # Pages of 2 were followed through the Link header.
    assert sum(1 for m, p in github.requests if m == "GET") >= 8 // 2


def test_github_text_output_lists_the_findings(dev, github):
    lost = send_github(github, 3, dropped={0})
    result = run_cli(dev.relay_bin, dev.data_dir, "reconcile", "gh", "--dry-run", json=False,
                     check=False)
    print(result.stdout)
    assert result.returncode == 0, result.stderr
    assert "seen by the provider: 3" in result.stdout
    assert f"missing:              1  {lost[0]}" in result.stdout
    assert "dry run: nothing was recovered" in result.stdout


def test_github_bad_token_is_refused_and_never_printed(dev, github, monkeypatch):
    send_github(github, 2, dropped={0})
    monkeypatch.setenv("RELAY_TEST_GITHUB_TOKEN", "ghp_wrong_token_value")
    result = reconcile(dev, "gh", check=False)
    print(result.stdout, result.stderr)
    assert result.returncode == 1
    assert "refused the credential (401)" in result.stderr
    assert "ghp_wrong_token_value" not in result.stdout + result.stderr
    assert github.token not in result.stdout + result.stderr
    assert findings(result)["seen"] == 0


def test_github_app_hook_dropped_deliveries_are_redelivered_with_a_jwt(dev, github_app):
    lost = send_github(github_app, 6, dropped={0, 3})
    wait_until(lambda: len(events_of(dev, "ghapp")) == 4, message="4 delivered events")

    first = findings(reconcile(dev, "ghapp"))
    print("first run:", first)
    assert (first["seen"], first["queued"]) == (6, 4), first
    assert sorted(first["missing"]) == sorted(lost)
    assert sorted(first["recovered"]) == sorted(lost)
    assert first["failed"] == [] and "stopped" not in first
    # Every request carried a JWT the stand-in verified against the App's public key.
    requests_made = len(github_app.requests)
    assert len(github_app.jwt_claims) == requests_made > 0
    assert {c["iss"] for c in github_app.jwt_claims} == {github_app.app_id}
    assert all(c["exp"] - c["iat"] <= 600 for c in github_app.jwt_claims)
    wait_until(lambda: len(github_app.redeliveries) == 2, message="2 redeliveries sent")
    assert [status for _, status in github_app.redeliveries] == [202, 202]
    wait_until(lambda: len(events_of(dev, "ghapp")) == 6, message="6 events after reconcile")

    second = findings(reconcile(dev, "ghapp"))
    print("second run:", second)
    assert (second["seen"], second["queued"]) == (6, 6), second
    assert second["missing"] == [] and second["recovered"] == []
    assert len(github_app.redeliveries) == 2
    assert len(events_of(dev, "ghapp")) == 6



def test_github_app_key_in_pkcs8_from_an_environment_variable(dev, github_app, monkeypatch):
    lost = send_github(github_app, 3, dropped={1})
    monkeypatch.setenv("RELAY_TEST_GITHUB_APP_KEY", github_app.key_pkcs8)
    dev.cli("sources", "update", "ghapp", "--reconcile-credential", "env:RELAY_TEST_GITHUB_APP_KEY")
    done = findings(reconcile(dev, "ghapp"))
    assert done["recovered"] == lost, done
    assert {c["iss"] for c in github_app.jwt_claims} == {github_app.app_id}


def test_github_app_wrong_key_is_refused_and_never_printed(dev, github_app):
    send_github(github_app, 2, dropped={0})
    other_pkcs1, _, _ = app_key()
    (dev.data_dir / "github-app.pem").write_text(other_pkcs1)
    result = reconcile(dev, "ghapp", check=False)
    print(result.stdout, result.stderr)
    assert result.returncode == 1
    assert "refused the credential (401)" in result.stderr
    assert findings(result)["seen"] == 0
    assert github_app.jwt_claims == [] and github_app.redeliveries == []
    output = result.stdout + result.stderr
    for pem in (other_pkcs1, github_app.key_pkcs1):
        assert not any(line in output for line in key_lines(pem))

    # Not a key at all: refused before any request, without repeating it.
    (dev.data_dir / "github-app.pem").write_text("ghp_not_a_private_key_at_all\n")
    requests_before = len(github_app.requests)
    garbled = reconcile(dev, "ghapp", check=False)
    print(garbled.stdout, garbled.stderr)
    assert garbled.returncode == 1
    assert "not an RSA key in PEM" in garbled.stderr
    assert "ghp_not_a_private_key_at_all" not in garbled.stdout + garbled.stderr
    assert len(github_app.requests) == requests_before


def test_github_app_hook_needs_an_app_id(dev):
    dev.cli("sources", "add", "ghapp2", "--provider", "github", "--secret", "gh-" + "y" * 20)
    missing = dev.cli("sources", "update", "ghapp2", "--reconcile-credential", "file:app.pem",
                      "--github-hook", APP_HOOK, check=False)
    print(missing.stderr)
    assert missing.returncode == 1 and "needs --github-app-id" in missing.stderr
    misplaced = dev.cli("sources", "update", "ghapp2", "--reconcile-credential", "env:X",
                        "--github-hook", HOOK, "--github-app-id", "123", check=False)
    assert misplaced.returncode == 1 and "only for the GitHub App hook" in misplaced.stderr
    listed = sources_by_name(dev)
    print(listed["ghapp2"])
    assert not listed["ghapp2"].get("reconcile"), "nothing was stored"

    dev.cli("sources", "update", "ghapp2", "--reconcile-credential", "file:app.pem",
            "--github-hook", APP_HOOK, "--github-app-id", "123456")
    listed = sources_by_name(dev)
    assert listed["ghapp2"]["reconcile"]["github_app_id"] == "123456"


def test_github_retry_after_is_waited_for(dev, github):
    lost = send_github(github, 3, dropped={2})
    github.rate_limit(retry_after=1, times=1)
    done = findings(reconcile(dev, "gh"))
    assert done["recovered"] == lost
    wait_until(lambda: len(events_of(dev, "gh")) == 3, message="3 events")


def test_github_rate_limit_over_the_budget_stops_cleanly(dev, github):
    send_github(github, 3, dropped={2})
    github.rate_limit(retry_after=3600, times=1, status=403)
    result = reconcile(dev, "gh", check=False)
    print(result.stdout, result.stderr)
    assert result.returncode == 1
    stopped = findings(result)
    assert "rate limited" in stopped["stopped"] and "3600s" in stopped["stopped"]
    assert stopped["recovered"] == [] and github.redeliveries == []


def send_stripe(api, count, dropped):
    lost = []
    for i in range(count):
        event_type = "invoice.paid" if i % 2 else "payment_intent.succeeded"
        event_id = api.send(event_type, {"id": f"obj_{i}", "amount": 100 + i}, drop=i in dropped)
        if i in dropped:
            lost.append((event_id, event_type))
    return lost


def test_stripe_dropped_events_are_ingested_once_marked_reconciled(dev, stripe_api):
    lost = send_stripe(stripe_api, 7, dropped={0, 3, 5})
    wait_until(lambda: len(events_of(dev, "st")) == 4, message="4 delivered events")

    dry = findings(reconcile(dev, "st", "--dry-run"))
    print("dry run:", dry)
    assert (dry["seen"], dry["queued"]) == (7, 4), dry
    assert sorted(dry["missing"]) == sorted(i for i, _ in lost)
    assert len(events_of(dev, "st")) == 4

    first = findings(reconcile(dev, "st"))
    print("first run:", first)
    assert sorted(first["recovered"]) == sorted(i for i, _ in lost)
    events = wait_until(lambda: (lambda e: e if len(e) == 7 else None)(events_of(dev, "st")),
                        message="7 events after reconcile")
    by_type = {}
    for summary in events:
        shown = dev.event(summary["id"])
        by_type.setdefault(shown["reconciled"], []).append((shown["type"], shown["body"]))
    assert len(by_type[True]) == 3 and len(by_type[False]) == 4
    for event_id, event_type in lost:
        assert any(t == event_type and event_id in body for t, body in by_type[True])

    second = findings(reconcile(dev, "st"))
    print("second run:", second)
    assert (second["seen"], second["queued"], second["missing"]) == (7, 7, [])
    assert len(events_of(dev, "st")) == 7
    # created[gte] and starting_after pagination were used.
    queries = [q for p, q in stripe_api.requests if p == "/v1/events"]
    assert all("created[gte]" in q for q in queries)
    assert any("starting_after" in q for q in queries)


def test_stripe_event_types_are_passed_on(dev, stripe_api):
    send_stripe(stripe_api, 4, dropped={0, 1})
    dev.cli("sources", "update", "st", "--stripe-event-types", "invoice.paid")
    done = findings(reconcile(dev, "st", "--dry-run"))
    assert done["seen"] == 2 and len(done["missing"]) == 1, done
    assert all(q.get("types[]") == ["invoice.paid"] for p, q in stripe_api.requests)


def test_stripe_bad_key_and_rate_limits(dev, stripe_api):
    send_stripe(stripe_api, 3, dropped={1})
    (dev.data_dir / "stripe.key").write_text("sk_test_wrong\n")
    refused = reconcile(dev, "st", check=False)
    assert refused.returncode == 1 and "refused the credential (401)" in refused.stderr
    assert "sk_test_wrong" not in refused.stdout + refused.stderr

    (dev.data_dir / "stripe.key").write_text(stripe_api.api_key)
    stripe_api.rate_limit(retry_after=3600)
    stopped = reconcile(dev, "st", check=False)
    assert stopped.returncode == 1
    assert "rate limited" in findings(stopped)["stopped"]
    assert len(events_of(dev, "st")) == 2

    stripe_api.rate_limit(retry_after=1, times=2)
    done = findings(reconcile(dev, "st"))
    assert len(done["recovered"]) == 1, done
    wait_until(lambda: len(events_of(dev, "st")) == 3, message="3 events")


def test_reconcile_needs_settings_and_a_known_provider(dev):
    dev.cli("sources", "add", "plain", "--provider", "github", "--secret", "gh-" + "x" * 20)
    result = reconcile(dev, "plain", check=False)
    assert result.returncode == 1 and "no reconcile settings" in result.stderr
    dev.cli("sources", "add", "std", "--provider", "standard", "--secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    refused = dev.cli("sources", "update", "std", "--reconcile-credential", "env:X", check=False)
    assert refused.returncode == 1 and "does not support standard" in refused.stderr
    bad_hook = dev.cli("sources", "update", "plain", "--reconcile-credential", "env:X",
                       "--github-hook", "repos/octo/hooks/1", check=False)
    assert bad_hook.returncode == 1 and "github hook" in bad_hook.stderr


def test_an_api_that_cannot_be_reached_says_why(dev, monkeypatch):
    """The transport error keeps its causes: the operator reads that the connection was refused."""
    import socket
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    dev.cli("sources", "add", "gh", "--provider", "github", "--secret", f"gh-{uuid.uuid4().hex}")
    monkeypatch.setenv("RELAY_TEST_GITHUB_TOKEN", f"ghp_{uuid.uuid4().hex}")
    dev.cli("sources", "update", "gh", "--reconcile-credential", "env:RELAY_TEST_GITHUB_TOKEN",
            "--reconcile-api-url", f"http://127.0.0.1:{closed}", "--github-hook", HOOK)
    result = reconcile(dev, "gh", check=False)
    assert result.returncode == 1
    said = (result.stdout + result.stderr).lower()
    assert "cannot reach the api" in said, said
    assert "connection refused" in said, said
