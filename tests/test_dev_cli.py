"""The admin CLI on the local store: listing, removing, enabling, and its exit codes
(0 success, 1 failure with {"error": {...}} on stderr under --json, 2 usage)."""

import json
import subprocess

import pytest

from conftest import (
    accepted_id,
    add_subscription,
    child_env,
    new_secret,
    send_github,
    wait_until,
)


def assert_json_failure(result, *words):
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    error = json.loads(result.stderr)["error"]
    assert isinstance(error, dict) and error["message"]
    for word in words:
        assert word in error["message"], error
    return error


def test_sources_commands(cli):
    assert cli("sources", "list") == []
    cli("sources", "add", "github", "--provider", "github", "--secret", "gh-secret-1")
    std_secret = new_secret(24)
    cli("sources", "add", "std", "--provider", "standard", "--secret", std_secret)
    cli("sources", "add", "custom", "--provider", "hmac", "--secret", "k", "--header", "X-Sig",
        "--prefix", "sha256=")
    listed = {s["name"]: s for s in cli("sources", "list")}
    assert {n: s["provider"] for n, s in listed.items()} == {
        "github": "github", "std": "standard", "custom": "hmac"}
    assert listed["github"]["secrets"] == 1
    text = json.dumps(listed)
    assert "gh-secret-1" not in text and std_secret not in text  # never printed

    updated = cli("sources", "update", "github", "--add-secret", "gh-secret-2", "--tolerance", "60")
    assert updated["secrets"] == 2 and updated["tolerance_secs"] == 60
    updated = cli("sources", "update", "github", "--remove-secret", "gh-secret-1")
    assert updated["secrets"] == 1
    # A source keeps at least one secret.
    assert_json_failure(cli("sources", "update", "github", "--remove-secret", "gh-secret-2",
                            check=False), "secret")

    assert cli("sources", "remove", "custom") == {"removed": "custom"}
    assert sorted(s["name"] for s in cli("sources", "list")) == ["github", "std"]

    # Failures: exit 1, JSON error on stderr, nothing on stdout.
    assert_json_failure(cli("sources", "add", "github", "--provider", "github", "--secret", "x",
                            check=False), "github")
    assert_json_failure(cli("sources", "remove", "custom", check=False), "custom")
    assert_json_failure(cli("sources", "add", "bad name", "--provider", "github", "--secret", "x",
                            check=False))
    assert_json_failure(cli("sources", "add", "healthz", "--provider", "github", "--secret", "x",
                            check=False), "healthz")
    assert_json_failure(cli("sources", "add", "std2", "--provider", "standard", "--secret",
                            "not-whsec", check=False), "whsec_")
    assert_json_failure(cli("sources", "add", "h", "--provider", "hmac", "--secret", "k",
                            check=False), "--header")


def test_subscriptions_commands(cli):
    cli("sources", "add", "github", "--provider", "github", "--secret", "s")
    cli("sources", "add", "other", "--provider", "github", "--secret", "s")
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

    assert_json_failure(cli("subscriptions", "remove", b["id"], check=False), b["id"])
    assert_json_failure(cli("subscriptions", "enable", "sub_nope", check=False), "sub_nope")
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
                            "https://example.com/", "--events", "iss*es", check=False), "pattern")
    assert_json_failure(cli("events", "show", "evt_nope", check=False), "evt_nope")
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
    assert json.loads(result.stderr)["error"]


def test_help_and_version(relay_bin):
    for args in (["--help"], ["--version"], ["dev", "--help"], ["subscriptions", "--help"]):
        result = subprocess.run([str(relay_bin), *args], capture_output=True, text=True,
                                env=child_env(), timeout=30)
        assert result.returncode == 0, (args, result.stderr)
        assert result.stdout.strip()


def test_admin_changes_reach_a_running_dev(dev, sink, sub_secret):
    """Admin commands in another process take effect on a running `relay dev`."""
    dev.cli("sources", "add", "github", "--provider", "github", "--secret", "one")
    add_subscription(dev, "github", f"{sink.url}/ok/admin", secret=sub_secret)
    accepted_id(send_github(dev, "one")[0])

    # An added inbound secret verifies (within the dev's short cache time), the old one still too.
    dev.cli("sources", "update", "github", "--add-secret", "two")
    wait_until(lambda: send_github(dev, "two")[0].status_code == 202, timeout=10,
               message="the added source secret")
    accepted_id(send_github(dev, "one")[0])
    # A removed one no longer does.
    dev.cli("sources", "update", "github", "--remove-secret", "one")
    wait_until(lambda: send_github(dev, "one")[0].status_code == 401, timeout=10,
               message="the removed source secret to be refused")

    # A removed source is unknown.
    dev.cli("sources", "remove", "github")
    assert [s["name"] for s in dev.cli("sources", "list")] == []
    wait_until(lambda: send_github(dev, "two")[0].status_code == 404, timeout=10,
               message="the removed source to answer 404")
    events = dev.cli("events", "list")
    assert len(events) >= 3
    assert all(e["source"] == "github" for e in events)
