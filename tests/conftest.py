"""Fixtures for the end-to-end tests of `relay dev` and its CLI.

- `relay_bin`: the `relay` binary (env RELAY_BIN, default target/debug/relay).
- `sink`: a running tests/sink.py (`.url`, `.received(prefix)`, `.clear()`, `.wait_for(...)`).
- `dev`: a running `relay dev` on its own data dir (`.url`, `.data_dir`, `.cli(...)`, `.post(...)`,
  `.kill()`, `.restart()`); options through `@pytest.mark.dev(retry_schedule=..., args=[...])`.
- `github_request`, `standard_request`: signed inbound requests, `new_secret()`: a whsec_ secret.
- `wait_until(cond, timeout)`: poll with a deadline; never a fixed sleep as an assertion.
- `room(seconds)`: a time window stretched by the machine's measured load (`load_factor`).
- `node_modules`: tests/node_modules with tests/package.json installed; `octokit`: signs with
  GitHub's @octokit/webhooks-methods through node.

Every process logs to a file under pytest's tmp dir (outside the tree); a failing test prints
the tail of each log.
"""

import base64
import hashlib
import hmac
import json as jsonlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
from standardwebhooks.webhooks import Webhook

ROOT = Path(__file__).resolve().parent.parent
SINK_SCRIPT = ROOT / "tests" / "sink.py"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")

# Loopback only, never through a proxy from the environment.
http = requests.Session()
http.trust_env = False


# --------------------------------------------------------------------------------------------
# helpers


def load_factor():
    """How many times slower than an idle machine this one runs now: the one-minute load average
    per core, at least 1. Waits and settling windows stretch by it, so a busy machine gets room in
    proportion to its measured load instead of a failed test."""
    try:
        per_core = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        return 1.0
    return max(1.0, per_core)


def room(seconds):
    """`seconds` of an idle machine, stretched by the load now (`load_factor`)."""
    return seconds * load_factor()


def wait_until(cond, timeout=15.0, interval=0.05, message="condition"):
    """Polls `cond` until it returns something truthy, which is returned; fails once `timeout`
    seconds, stretched by the machine's load (`room`), have passed."""
    start = time.monotonic()
    last = None
    while True:
        last = cond()
        if last:
            return last
        waited = time.monotonic() - start
        if waited > room(timeout):
            raise AssertionError(f"timed out after {waited:.1f}s ({timeout}s at load factor "
                                 f"{load_factor():.1f}) waiting for {message} (last: {last!r})")
        time.sleep(interval)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env():
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env.setdefault("RUST_LOG", "info")
    return env


def tail(path, lines=60):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def new_secret(nbytes=32):
    """A subscription signing secret: whsec_ + base64 of random bytes."""
    return "whsec_" + base64.b64encode(os.urandom(nbytes)).decode()


def github_request(secret, body, event="issues", delivery=None, content_type="application/json",
                   signature=None):
    """Headers of a GitHub delivery: HMAC-SHA256 over the raw body in X-Hub-Signature-256."""
    if isinstance(body, str):
        body = body.encode()
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "X-Hub-Signature-256": signature if signature is not None else f"sha256={digest}",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "User-Agent": "GitHub-Hookshot/test",
    }
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers


def standard_request(secret, body, msg_id=None, timestamp=None, content_type="application/json"):
    """Headers of a Standard Webhooks delivery, signed with the official library."""
    if isinstance(body, bytes):
        body = body.decode()
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, tz=timezone.utc), body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
        "Content-Type": content_type,
    }


def standard_signature_bytes(secret, msg_id, timestamp, body):
    """`v1,<base64>` over raw bytes (the library only takes text, so binary bodies need this)."""
    key = base64.b64decode(secret.removeprefix("whsec_") + "==")
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


# --------------------------------------------------------------------------------------------
# failure reports: each process fixture prints its log when the test failed


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def failed_in(request):
    return any(
        getattr(getattr(request.node, f"rep_{when}", None), "failed", False)
        for when in ("setup", "call")
    )


# --------------------------------------------------------------------------------------------
# sink


class Sink:
    """tests/sink.py in a child process."""

    def __init__(self, log_path, secrets=()):
        self.log_path = Path(log_path)
        self.secrets = list(secrets)
        args = [sys.executable, str(SINK_SCRIPT), "--port", "0"]
        for secret in self.secrets:
            args += ["--secret", secret]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL,
            env=child_env(),
        )
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("listening "):
            self.stop()
            raise RuntimeError(f"sink did not start: {line!r}\n{tail(self.log_path)}")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def received(self, prefix=""):
        """Recorded requests whose path starts with `prefix`, with `body` as bytes."""
        response = http.get(f"{self.url}/received", timeout=10)
        response.raise_for_status()
        items = response.json()
        for item in items:
            item["body"] = base64.b64decode(item["body_b64"])
        return [item for item in items if item["path"].startswith(prefix)]

    def wait_for(self, prefix, count, timeout=15.0):
        """Waits until at least `count` requests arrived under `prefix`; returns them."""
        return wait_until(
            lambda: (lambda got: got if len(got) >= count else None)(self.received(prefix)),
            timeout=timeout,
            message=f"{count} request(s) at {self.url}{prefix}",
        )

    def clear(self):
        http.delete(f"{self.url}/received", timeout=10).raise_for_status()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()


@pytest.fixture
def sink_factory(tmp_path, request):
    sinks = []

    def start(secrets=()):
        sink = Sink(tmp_path / f"sink-{len(sinks)}.log", secrets)
        sinks.append(sink)
        return sink

    yield start
    failed = failed_in(request)
    for sink in sinks:
        sink.stop()
        if failed:
            print(f"---- sink log {sink.log_path} ----\n{tail(sink.log_path)}")


@pytest.fixture
def sub_secret():
    """The signing secret tests give their subscriptions; the `sink` fixture verifies with it."""
    return new_secret()


@pytest.fixture
def sink(sink_factory, sub_secret, request):
    marker = request.node.get_closest_marker("sink")
    options = dict(marker.kwargs) if marker else {}
    return sink_factory(secrets=options.get("secrets", [sub_secret]))


# --------------------------------------------------------------------------------------------
# relay dev


class CliError(Exception):
    def __init__(self, args, returncode, stdout, stderr):
        super().__init__(f"relay {' '.join(args)} exited {returncode}\nstdout: {stdout}\nstderr: {stderr}")
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


def run_cli(relay_bin, data_dir, *args, json=True, check=True, timeout=60):
    """Runs `relay --data-dir DIR ARGS [--json]`; returns parsed JSON (or the CompletedProcess
    when json=False or check=False)."""
    argv = [str(relay_bin), "--data-dir", str(data_dir), *map(str, args)]
    if json:
        argv.append("--json")
    result = subprocess.run(
        argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=child_env(),
        timeout=timeout,
    )
    if not check:
        return result
    if result.returncode != 0:
        raise CliError(argv[1:], result.returncode, result.stdout, result.stderr)
    return jsonlib.loads(result.stdout) if json else result


class Dev:
    """`relay dev` in a child process on its own data dir."""

    def __init__(self, relay_bin, data_dir, log_path, retry_schedule="1s,1s,1s", args=(),
                 open_files=None):
        self.relay_bin = relay_bin
        # An open-file limit (soft and hard) for the process, to test descriptor exhaustion.
        self.open_files = open_files
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.retry_schedule = retry_schedule
        self.args = list(args)
        self.proc = None
        self.port = None
        self._log = open(self.log_path, "ab")
        self.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, port=None):
        for attempt in range(5):
            self.port = port if (port and attempt == 0) else free_port()
            self._log.write(f"==== relay dev on port {self.port} ====\n".encode())
            self._log.flush()
            self.proc = subprocess.Popen(
                [str(self.relay_bin), "dev", "--listen", f"127.0.0.1:{self.port}",
                 "--data-dir", str(self.data_dir), "--retry-schedule", self.retry_schedule,
                 *self.args],
                stdout=self._log, stderr=self._log, stdin=subprocess.DEVNULL, env=child_env(),
                preexec_fn=self._limit_open_files if self.open_files else None,
            )
            if self._wait_healthy():
                return
        raise RuntimeError(f"relay dev did not start\n{tail(self.log_path)}")

    def _limit_open_files(self):
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files, self.open_files))

    def _wait_healthy(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False  # e.g. the port was taken meanwhile: try another
            try:
                if http.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"relay dev not healthy after {timeout}s\n{tail(self.log_path)}")

    def kill(self):
        """SIGKILL: no graceful shutdown."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self):
        """Kills the process (if running) and starts it again on the same data dir and port
        (another port if that one cannot be had)."""
        self.kill()
        self.start(port=self.port)

    def close(self):
        self.stop()
        self._log.close()

    def cli(self, *args, json=True, check=True):
        return run_cli(self.relay_bin, self.data_dir, *args, json=json, check=check)

    def post(self, path, body=b"", headers=None, timeout=30):
        return http.post(f"{self.url}{path}", data=body, headers=headers or {}, timeout=timeout)

    def post_copy(self, path, body, headers):
        """A provider's copy of a delivery already accepted, retried as a provider retries it."""
        return retry_while_busy(lambda: self.post(path, body, headers))

    def event(self, event_id):
        return self.cli("events", "show", event_id)

    def attempts(self, event_id):
        """The attempt log of an event; None while the fanout has not stored the event yet."""
        try:
            return self.event(event_id)["attempts"]
        except CliError as error:
            # The fanout stores the event record when it takes the event off the queue, so
            # right after the 202 `events show` may not know it yet.
            if "no event" in error.stderr:
                return None
            raise

    def wait_attempts(self, event_id, predicate, timeout=15.0, message=None):
        """Polls `events show` until `predicate(attempts)` holds; returns the attempts."""
        def check():
            attempts = self.attempts(event_id)
            return attempts if attempts is not None and predicate(attempts) else None
        return wait_until(check, timeout=timeout, interval=0.2,
                          message=message or f"attempts of {event_id}")


@pytest.fixture(scope="session")
def relay_bin():
    path = Path(os.environ.get("RELAY_BIN") or ROOT / "target" / "debug" / "relay")
    if not path.is_file():
        pytest.fail(f"relay binary not found at {path}: cargo build -p relay-cli, or set RELAY_BIN")
    return path


@pytest.fixture
def dev_factory(relay_bin, tmp_path, request):
    devs = []

    def start(retry_schedule="1s,1s,1s", args=(), open_files=None):
        n = len(devs)
        dev = Dev(relay_bin, tmp_path / f"data-{n}", tmp_path / f"relay-dev-{n}.log",
                  retry_schedule=retry_schedule, args=args, open_files=open_files)
        devs.append(dev)
        return dev

    yield start
    failed = failed_in(request)
    for dev in devs:
        dev.close()
        if failed:
            print(f"---- relay dev log {dev.log_path} ----\n{tail(dev.log_path, 120)}")


@pytest.fixture
def dev(dev_factory, request):
    """A running `relay dev --retry-schedule 1s,1s,1s`; `@pytest.mark.dev(retry_schedule=...,
    args=[...], open_files=N)` changes its options."""
    marker = request.node.get_closest_marker("dev")
    options = dict(marker.kwargs) if marker else {}
    return dev_factory(**options)


@pytest.fixture
def cli(relay_bin, tmp_path):
    """`relay` admin commands on a data dir of their own, without a running `relay dev`."""
    data_dir = tmp_path / "cli-data"
    return lambda *args, **kw: run_cli(relay_bin, data_dir, *args, **kw)


# --------------------------------------------------------------------------------------------
# set-ups shared by the test files


def add_github_source(dev, name="github", secret=None):
    """Adds a GitHub source; returns its secret."""
    secret = secret or f"gh-{uuid.uuid4().hex}"
    dev.cli("sources", "add", name, "--provider", "github", "--secret", secret)
    return secret


def add_subscription(dev, source, url, events="*", secret=None):
    """Adds a subscription; returns the CLI's JSON (with `id` and `secret`)."""
    args = ["subscriptions", "add", "--source", source, "--url", url, "--events", events]
    if secret:
        args += ["--secret", secret]
    return dev.cli(*args)


def send_github(dev, secret, body=None, event="issues", source="github", delivery=None, **kw):
    """POSTs a signed GitHub delivery; returns (response, body, headers)."""
    if body is None:
        body = jsonlib.dumps({"action": "opened", "n": uuid.uuid4().hex}).encode()
    headers = github_request(secret, body, event=event, delivery=delivery, **kw)
    return dev.post(f"/{source}", body, headers), body, headers


def retry_while_busy(post, deadline_secs=20):
    """Sends again while the answer is 409: a copy of an accepted delivery is answered as a
    duplicate once the fanout has stored the event (claims confirmed by the stored event, the
    default: RELAY_EVENT_ARCHIVE=all); until then, 409 with Retry-After."""
    deadline = time.monotonic() + deadline_secs
    while True:
        response = post()
        if response.status_code != 409 or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def accepted_id(response):
    assert response.status_code == 202, (response.status_code, response.text)
    return response.json()["id"]


# --------------------------------------------------------------------------------------------
# npm packages (tests/package.json): official provider libraries and published corpora


TESTS = ROOT / "tests"


@pytest.fixture(scope="session")
def node_modules():
    """tests/node_modules with every package of tests/package.json (`npm ci` when one is
    missing); returns its path."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail("node and npm are needed for the packages in tests/package.json")
    wanted = jsonlib.loads((TESTS / "package.json").read_text())["dependencies"]
    modules = TESTS / "node_modules"
    if not all((modules / name / "package.json").is_file() for name in wanted):
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=TESTS, check=True,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
    return modules


OCTOKIT_SIGN = """
import { sign, verify } from "@octokit/webhooks-methods";
let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = [];
for (const { secret, payload } of JSON.parse(input)) {
  const signature = await sign(secret, payload);
  if (!(await verify(secret, payload, signature))) throw new Error("octokit verify failed");
  out.push(signature);
}
process.stdout.write(JSON.stringify(out));
"""


@pytest.fixture(scope="session")
def octokit(node_modules):
    """`sign_all([(secret, payload text), ...])`: the `X-Hub-Signature-256` of each, made (and
    checked) by GitHub's @octokit/webhooks-methods through node, in one node process."""

    def sign_all(pairs):
        result = subprocess.run(
            [shutil.which("node"), "--input-type=module", "-e", OCTOKIT_SIGN],
            cwd=TESTS, check=True, capture_output=True, text=True, timeout=300,
            input=jsonlib.dumps([{"secret": s, "payload": p} for s, p in pairs]),
        )
        return jsonlib.loads(result.stdout)

    return sign_all
