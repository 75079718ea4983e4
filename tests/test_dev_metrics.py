"""`relay dev` answers GET /metrics in the Prometheus text format: the same tally the Lambda
functions write as EMF, parsed here with the official Prometheus client's parser."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import accepted_id, add_github_source, add_subscription, http, send_github, wait_until


def scrape(dev):
    response = http.get(f"{dev.url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@pytest.mark.dev(retry_schedule="30s")
def test_metrics_count_answers_and_attempts(dev, sink):
    secret = add_github_source(dev)
    add_subscription(dev, "github", f"{sink.url}/ok/m")
    add_subscription(dev, "github", f"{sink.url}/status/500/m")
    first, body, headers = send_github(dev, secret, delivery="d-1")
    accepted_id(first)
    duplicate = dev.post_copy("/github", body, headers)
    assert duplicate.status_code == 200
    forged, _, _ = send_github(dev, "not-the-secret-at-all", delivery="d-2")
    assert forged.status_code == 401
    for name in ("nope-1", "nope-2"):
        assert dev.post(f"/{name}", b"{}").status_code == 404
    sink.wait_for("/ok/m", 1)
    sink.wait_for("/status/500/m", 1)

    source = (("source", "github"),)
    samples = wait_until(
        lambda: (lambda s: s if s.get(("relay_retries_scheduled_total", source)) == 1 else None)(
            scrape(dev)),
        message="the failed attempt counted")
    assert samples[("relay_accepted_total", source)] == 1
    assert samples[("relay_duplicates_total", source)] == 1
    assert samples[("relay_refused_total", (("source", "github"), ("status", "401")))] == 1
    assert samples[("relay_refused_total", (("source", "(unknown)"), ("status", "404")))] == 2
    assert samples[("relay_delivered_total", source)] == 1
    assert samples[("relay_failed_total", (("class", "http_status"), ("source", "github")))] == 1
    assert samples[("relay_delivery_latency_ms_count", source)] == 2
    assert samples[("relay_accept_to_deliver_ms_count", source)] == 1
    assert not any("nope" in str(key) for key in samples)
