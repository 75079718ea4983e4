"""`relay --aws console` on moto, in headless Chromium: the overview from SQS, the table and the
functions' CloudWatch metrics (the per-minute chart), sources and subscriptions from the table,
and a dead letter redriven from the page. Skipped when MOTO_ENDPOINT is unset."""

import datetime
import re
import subprocess
import uuid

import pytest
import requests
from selenium.webdriver.common.by import By

from conftest import free_port, room, tail, wait_until
from lambda_support import MOTO, aws_env, boto
from test_console import browser, result_title, screenshot, text_of  # noqa: F401  (the Chromium fixture)
from test_lambda_runtime import relay_aws, stack  # noqa: F401  (the table and queues)

pytestmark = pytest.mark.skipif(not MOTO, reason="MOTO_ENDPOINT is not set (scripts/test starts moto)")


def test_console_on_a_stack(relay_bin, stack, browser, tmp_path):  # noqa: F811
    relay_aws(relay_bin, stack, "sources", "add", "github", "--provider", "github",
              "--secret", "gh-console-secret-0123456789")
    relay_aws(relay_bin, stack, "subscriptions", "add", "--source", "github",
              "--url", "https://example.com/console-a")
    paused = relay_aws(relay_bin, stack, "subscriptions", "add", "--source", "github",
                       "--url", "https://example.com/console-b")["id"]
    relay_aws(relay_bin, stack, "subscriptions", "disable", paused)
    sqs = boto("sqs")
    sqs.send_message(QueueUrl=stack["deliveries_dlq"], MessageBody="{}")
    namespace = f"WebhookRelay/console-{uuid.uuid4().hex[:8]}"
    now = datetime.datetime.now(datetime.timezone.utc)
    cloudwatch = boto("cloudwatch")
    for name, value, minutes_ago in (("Accepted", 5, 3), ("Delivered", 4, 3), ("Failed", 1, 2)):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=[{
            "MetricName": name, "Value": value, "Unit": "Count",
            "Timestamp": now - datetime.timedelta(minutes=minutes_ago)}])

    port = free_port()
    env = {**aws_env(), "RELAY_METRICS_NAMESPACE": namespace}
    log = open(tmp_path / "console.log", "wb")
    proc = subprocess.Popen(
        [str(relay_bin), "--aws", "--table", stack["table"], "--events-queue-url", stack["events"],
         "--deliveries-queue-url", stack["deliveries"], "console", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=env,
    )
    try:
        line = proc.stdout.readline().decode()
        assert re.search(rf"http://127\.0\.0\.1:{port}/console \(loopback only", line), (
            line, tail(tmp_path / "console.log"))
        console = f"http://127.0.0.1:{port}/console"
        wait_until(lambda: requests.get(console, timeout=room(30)).ok, timeout=room(30),
                   message="relay console on the stack")

        browser.get(console)
        assert "5 accepted" in text_of(browser, "#last-hour")
        assert "1 failed" in text_of(browser, "#last-hour")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#activity-chart polyline")) == 3
        queues = {row.find_elements(By.TAG_NAME, "td")[0].text: row.text
                  for row in browser.find_elements(By.CSS_SELECTOR, "#queues tbody tr")}
        assert queues["deliveries-dlq"].split()[1] == "1", queues
        assert paused in text_of(browser, "#attention")
        screenshot(browser, "overview-aws")

        browser.get(f"{console}/sources")
        assert "github" in text_of(browser, "#sources")
        assert "gh-console-secret" not in browser.page_source
        browser.get(f"{console}/subscriptions")
        assert "disabled" in text_of(browser, f"#sub-{paused} .health")
        browser.get(f"{console}/events")
        assert browser.find_elements(By.ID, "no-events")

        browser.get(f"{console}/recover")
        assert text_of(browser, "#dlq-deliveries") == "1"
        browser.find_element(By.ID, "redrive-deliveries").click()
        assert "redrove 1" in result_title(browser)
        attributes = sqs.get_queue_attributes(QueueUrl=stack["deliveries_dlq"],
                                              AttributeNames=["ApproximateNumberOfMessages"])
        assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
        log.close()
