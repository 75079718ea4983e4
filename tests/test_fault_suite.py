"""A short seeded run of scripts/fault-suite (the full one is 2,000 events; see README,
"Fault-injection suite"): 200 events through the receiver and fanout under injected AWS faults
and fanout kills. Nothing accepted may be lost, every answer to the sender is a 2xx or a
refusal, and every second delivery after a 2xx is explained by a fault that touched its event.
Skipped without cargo-lambda; the suite starts its own moto and proxy."""

import json
import subprocess

import pytest

from conftest import ROOT
from lambda_support import CARGO_LAMBDA

SUITE = ROOT / "scripts" / "fault-suite"
# Build (warm: a no-op after cargo build), ~20 s of sending, the drain (failed batches come
# back after the 20 s visibility timeout, several times over), checks; generous for a busy host.
SUITE_TIMEOUT = 900


@pytest.mark.skipif(not CARGO_LAMBDA, reason="cargo-lambda is not on PATH (pip install cargo-lambda)")
def test_short_seeded_fault_run(tmp_path):
    report_path = tmp_path / "report.json"
    result = subprocess.run(
        [str(SUITE), "--events", "200", "--seed", "7", "--kills", "2",
         "--report", str(report_path)],
        cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=SUITE_TIMEOUT,
    )
    print(result.stdout[-6000:])
    print(result.stderr[-3000:])
    assert result.returncode == 0, f"fault-suite exited {result.returncode}"
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) == {"events", "accepted", "faults", "lost", "repeats_after_success",
                            "dead_letters"}
    report = json.loads(report_path.read_text())
    # An event is accepted, or counted as refused for good (each of its answers a 503 or 409).
    assert summary["events"] == 200, summary
    assert summary["accepted"] + len(report["given_up"]) == 200, summary
    assert summary["lost"] == 0, summary
    injected = {k: n for k, n in summary["faults"].items() if k != "fanout_kill" and n}
    assert len(injected) >= 4 and sum(injected.values()) >= 30, summary
    assert report["drained"], report["poller"]
    assert report["unexplained_repeats"] == 0, report["repeat_causes"]
    assert report["not_refusals"] == []
