"""`relay --aws status` on moto: queue depths from SQS, disabled subscriptions from the table,
and the last hour's counts from the functions' metrics in CloudWatch (put here through moto, as
CloudWatch Logs would from the EMF lines). Skipped when MOTO_ENDPOINT is unset."""

import datetime
import json
import subprocess
import uuid

import pytest

from lambda_support import MOTO, aws_env, boto
from test_lambda_runtime import stack  # noqa: F401  (the table and queues, template-shaped)

pytestmark = pytest.mark.skipif(not MOTO, reason="MOTO_ENDPOINT is not set (scripts/test starts moto)")


def relay_aws(relay_bin, queues, *args, namespace=None):
    """`relay --aws` with explicit table and queue flags; the metrics namespace from
    RELAY_METRICS_NAMESPACE when given."""
    argv = [str(relay_bin), "--aws", "--table", queues["table"],
            "--events-queue-url", queues["events"], "--deliveries-queue-url", queues["deliveries"],
            *args, "--json"]
    env = aws_env()
    env.pop("RELAY_METRICS_NAMESPACE", None)
    if namespace:
        env["RELAY_METRICS_NAMESPACE"] = namespace
    result = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            env=env, timeout=120)
    assert result.returncode == 0, f"stdout: {result.stdout}\nstderr: {result.stderr}"
    return json.loads(result.stdout)


def test_status_on_aws_reads_sqs_the_table_and_cloudwatch(relay_bin, stack):  # noqa: F811
    sqs = boto("sqs")
    for n in range(3):
        sqs.send_message(QueueUrl=stack["events"], MessageBody=f'{{"n":{n}}}')
    taken = sqs.receive_message(QueueUrl=stack["events"], MaxNumberOfMessages=1,
                                VisibilityTimeout=300)["Messages"]
    assert len(taken) == 1
    sqs.send_message(QueueUrl=stack["deliveries"], MessageBody="{}", DelaySeconds=600)
    sqs.send_message(QueueUrl=stack["deliveries_dlq"], MessageBody="{}")

    relay_aws(relay_bin, stack, "sources", "add", "github", "--provider", "github",
                "--secret", "gh-test-secret-0123456789")
    healthy = relay_aws(relay_bin, stack, "subscriptions", "add", "--source", "github",
                          "--url", "https://example.com/a")["id"]
    paused = relay_aws(relay_bin, stack, "subscriptions", "add", "--source", "github",
                         "--url", "https://example.com/b")["id"]
    relay_aws(relay_bin, stack, "subscriptions", "disable", paused)

    namespace = f"WebhookRelay/status-{uuid.uuid4().hex[:8]}"
    now = datetime.datetime.now(datetime.timezone.utc)
    cloudwatch = boto("cloudwatch")

    def put(name, value, minutes_ago):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=[{
            "MetricName": name, "Value": value, "Unit": "Count",
            "Timestamp": now - datetime.timedelta(minutes=minutes_ago)}])

    # Totals as the EMF lines declare them (no dimension), in two minutes of the last hour.
    put("Accepted", 4, 50)
    put("Accepted", 3, 5)
    put("Delivered", 6, 5)
    put("Failed", 2, 20)
    # Not counted: what is older than an hour. (The per-source split of the same counts is a
    # metric of its own in CloudWatch, which a query without dimensions does not match; moto's
    # matches it too, so it is not put here.)
    put("Failed", 9, 90)

    # The oldest message's age, as SQS publishes it in CloudWatch (AWS/SQS, by queue name):
    # the latest minute counts; an older measurement does not.
    events_queue = stack["events"].rsplit("/", 1)[1]
    for value, minutes_ago in ((900, 10), (42, 1)):
        cloudwatch.put_metric_data(Namespace="AWS/SQS", MetricData=[{
            "MetricName": "ApproximateAgeOfOldestMessage", "Value": value, "Unit": "Seconds",
            "Dimensions": [{"Name": "QueueName", "Value": events_queue}],
            "Timestamp": now - datetime.timedelta(minutes=minutes_ago)}])

    status = relay_aws(relay_bin, stack, "status", namespace=namespace)
    queues = status["queues"]
    assert queues["events"] == {"visible": 2, "in_flight": 1, "delayed": 0, "oldest_age_secs": 42}
    assert queues["deliveries"] == {"visible": 0, "in_flight": 0, "delayed": 1,
                                    "oldest_age_secs": None}
    assert queues["events-dlq"] == {"visible": 0, "in_flight": 0, "delayed": 0,
                                    "oldest_age_secs": None}
    assert queues["deliveries-dlq"] == {"visible": 1, "in_flight": 0, "delayed": 0,
                                        "oldest_age_secs": None}
    assert [s["id"] for s in status["subscriptions"]] == [paused]
    (listed,) = status["subscriptions"]
    assert listed["enabled"] is False and listed["failing_since"] is None
    assert listed["url"] == "https://example.com/b" and listed["source"] == "github"
    assert healthy not in json.dumps(status)
    assert status["last_hour"] == {"accepted": 7, "delivered": 6, "failed": 2}
    assert status["last_hour_error"] is None

    # Without a namespace the rest still reports, and says what is missing.
    bare = relay_aws(relay_bin, stack, "status")
    assert bare["queues"] == {**queues, "events": {**queues["events"], "oldest_age_secs": None}}
    assert bare["last_hour"] is None
    assert "RELAY_METRICS_NAMESPACE" in bare["last_hour_error"]


def test_subscriptions_add_refuses_a_private_url_where_the_lambdas_would(relay_bin, stack):  # noqa: F811
    """Without a stack to read `AllowPrivateDestinations` from, the Lambdas' default holds (or
    their `RELAY_ALLOW_PRIVATE_DESTINATIONS` when the operator sets it)."""
    relay_aws(relay_bin, stack, "sources", "add", "private", "--provider", "github",
              "--secret", "gh-test-secret-0123456789")
    argv = [str(relay_bin), "--aws", "--table", stack["table"], "subscriptions", "add",
            "--source", "private", "--url", "http://127.0.0.1:9/hook", "--json"]
    env = aws_env()
    env.pop("RELAY_ALLOW_PRIVATE_DESTINATIONS", None)
    refused = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                             env=env, timeout=120)
    assert refused.returncode == 1, refused.stderr
    error = json.loads(refused.stderr)["error"]
    assert error["kind"] == "invalid", error
    assert "127.0.0.1 is a loopback address" in error["message"], error
    assert "AllowPrivateDestinations" in error["message"], error
    assert relay_aws(relay_bin, stack, "subscriptions", "list", "--source", "private") == []

    env["RELAY_ALLOW_PRIVATE_DESTINATIONS"] = "true"
    added = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           env=env, timeout=120)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["url"] == "http://127.0.0.1:9/hook"


def test_subscriptions_update_on_the_table(relay_bin, stack):  # noqa: F811
    """`subscriptions update` on DynamoDB: the changes are stored, the id and secret stay."""
    relay_aws(relay_bin, stack, "sources", "add", "updates", "--provider", "github",
              "--secret", "gh-test-secret-0123456789")
    added = relay_aws(relay_bin, stack, "subscriptions", "add", "--source", "updates",
                      "--url", "https://example.com/old", "--events", "push")
    updated = relay_aws(relay_bin, stack, "subscriptions", "update", added["id"],
                        "--url", "https://example.com/new", "--events", "issues.*",
                        "--filter", '{"body":{"action":"opened"}}')
    assert updated["id"] == added["id"]
    [listed] = relay_aws(relay_bin, stack, "subscriptions", "list", "--source", "updates")
    assert listed == updated
    assert (listed["url"], listed["events"]) == ("https://example.com/new", ["issues.*"])
    assert listed["filter"] == {"body": {"action": "opened"}}
    assert listed["secrets"] == 1
