"""A fault-injecting HTTP proxy between AWS clients (the functions, the CLI, boto3) and moto.

    python tests/faultproxy.py --upstream http://127.0.0.1:5000 --port 0 --seed 7 \
        --rate http500=0.02 --rate throttle@dynamodb=0.03 --rate lost_answer@sqs:DeleteMessage=0.05 \
        --script sqs:SendMessage#3=reset --log faults.jsonl

Prints `listening <port> seed <seed>` once ready. Point a client at it with AWS_ENDPOINT_URL (or
AWS_ENDPOINT_URL_SQS / _DYNAMODB / _S3 for one service).

Each request is named (service, operation): the service from the SigV4 credential scope (or the
X-Amz-Target prefix), the operation from X-Amz-Target (SQS and DynamoDB JSON protocols), from
`Action=` (query protocol: SQS query, CloudFormation, STS) or from method and path (S3 REST).
Then one fault kind may be injected:

    http500      500 InternalError in the service's error shape, not forwarded
    http503      503 ServiceUnavailable, not forwarded
    throttle     the service's throttling error, not forwarded: DynamoDB 400
                 ProvisionedThroughputExceededException (data plane) or ThrottlingException,
                 SQS 400 RequestThrottled (JSON: __type plus the x-amzn-query-error header the
                 SDKs read the code from; query: XML), S3 503 SlowDown, others 400 Throttling.
                 All are codes the SDKs' retry classifiers treat as throttling.
    latency      waits --latency-ms, then forwards
    reset        closes the connection without an answer, not forwarded
    timeout      holds the request unanswered until the client gives up (or --hold-secs), then
                 closes; not forwarded
    lost_answer  forwards (upstream applies it), then closes the connection instead of answering

Rates are per kind, optionally narrowed to a service or one operation; the most specific wins:
`--rate KIND=P`, `--rate KIND@service=P`, `--rate KIND@service:Operation=P`. A script names
exact calls: `--script service:Operation#N=KIND` gives the Nth call of that operation the fault
(scripts win over rates). The decision for the Nth call of an operation depends only on the
seed, the operation and N, so a run with the same seed injects the same faults into the same
calls whatever the interleaving of other operations.

Admin (not forwarded, never faulted):
    GET  /__faults  -> {"seed", "rates", "script", "counts": {kind: n}, "calls": {op: n},
                        "by_op": {op: {kind: n}}}
    POST /__faults  {"rates": {"KIND[@scope]": P, ...}, "script": ["op#N=KIND", ...],
                     "reset_counts": true}   (each key optional; rates and script replace)
With --log, each injected fault is one JSON line: seq, time, op, call (N), kind, and the
request body's first 4 KiB (so a test can tell which message or item a fault hit).
Stdlib only; asyncio; keep-alive connections to clients, one upstream connection per request.
"""

import argparse
import asyncio
import json
import random
import re
import sys
import time
import uuid
from collections import Counter, defaultdict
from urllib.parse import parse_qs, urlsplit

KINDS = ("http500", "http503", "throttle", "latency", "reset", "timeout", "lost_answer")
# Logged, never injected: a request applied upstream whose client had given up on its answer.
GAVE_UP = "client_gave_up"
# X-Amz-Target prefixes of the JSON protocols, by signing name (as tests/aws_calls.py reads them).
TARGET_SERVICES = {"DynamoDB_20120810": "dynamodb", "AmazonSQS": "sqs", "AmazonSSM": "ssm",
                   "secretsmanager": "secretsmanager"}
DYNAMODB_DATA_PLANE = {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan",
                       "BatchGetItem", "BatchWriteItem", "TransactGetItems", "TransactWriteItems"}
CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
MAX_HEADER_BYTES = 64 * 1024
LOGGED_BODY_CHARS = 4096


class BadRequest(Exception):
    pass


# ------------------------------------------------------------------------------------------
# naming a request


def operation_of(method, target, headers, body):
    """(service, operation) of an AWS request; headers lower-cased."""
    path, _, query = target.partition("?")
    service = None
    scope = CREDENTIAL_SCOPE.search(headers.get("authorization", ""))
    if scope:
        service = scope.group(1)
    amz_target = headers.get("x-amz-target")
    if amz_target:
        prefix, _, operation = amz_target.partition(".")
        return service or TARGET_SERVICES.get(prefix, prefix), operation
    action = parse_qs(query).get("Action")
    if not action and "x-www-form-urlencoded" in headers.get("content-type", ""):
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
    if action:
        return service or "unknown", action[0]
    if service == "s3" or service is None:
        return service or "unknown", s3_operation(method, path, query)
    return service, f"{method} {path}"


def s3_operation(method, path, query):
    """S3 REST names for the common calls (path-style addressing, as on loopback)."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "ListBuckets" if method == "GET" else f"{method} /"
    if len(parts) == 1:
        return {"PUT": "CreateBucket", "DELETE": "DeleteBucket", "HEAD": "HeadBucket",
                "GET": "ListObjects", "POST": "DeleteObjects"}.get(method, f"{method} bucket")
    if method == "PUT":
        return "CopyObject" if "x-amz-copy-source" in query else "PutObject"
    return {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject",
            "POST": "PostObject"}.get(method, f"{method} object")


def protocol_of(headers, service):
    if headers.get("x-amz-target"):
        return "json"
    if service == "s3":
        return "rest-xml"
    return "query"


# ------------------------------------------------------------------------------------------
# the service's own error answers


def error_answer(kind, service, operation, protocol):
    """(status, headers, body) of an injected error, in the shape the service's SDK parses."""
    if kind == "throttle":
        if service == "dynamodb":
            code = ("ProvisionedThroughputExceededException" if operation in DYNAMODB_DATA_PLANE
                    else "ThrottlingException")
            status, message = 400, "Rate of requests exceeds the allowed throughput (injected)."
        elif service == "sqs":
            code, status, message = "RequestThrottled", 400, "Request is throttled (injected)."
        elif service == "s3":
            code, status, message = "SlowDown", 503, "Please reduce your request rate (injected)."
        else:
            code, status, message = "Throttling", 400, "Rate exceeded (injected)."
    elif kind == "http503":
        code, status, message = "ServiceUnavailable", 503, "Service unavailable (injected)."
    else:
        code, status, message = "InternalError", 500, "Internal error (injected)."
    fault_side = "Receiver" if status >= 500 else "Sender"
    request_id = str(uuid.uuid4())
    if protocol == "json":
        namespace = {"dynamodb": "com.amazonaws.dynamodb.v20120810",
                     "sqs": "com.amazonaws.sqs"}.get(service, "com.amazon.coral.service")
        body = json.dumps({"__type": f"{namespace}#{code}", "message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.0"),
                   ("x-amzn-RequestId", request_id)]
        if service == "sqs":
            # SQS's JSON protocol is query-compatible: SDKs take the code from this header.
            headers.append(("x-amzn-query-error", f"{code};{fault_side}"))
        return status, headers, body
    if protocol == "rest-xml":
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                f"<Message>{message}</Message><RequestId>{request_id}</RequestId></Error>").encode()
    else:
        body = (f'<?xml version="1.0"?>\n<ErrorResponse><Error><Type>{fault_side}</Type>'
                f"<Code>{code}</Code><Message>{message}</Message></Error>"
                f"<RequestId>{request_id}</RequestId></ErrorResponse>").encode()
    return status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], body


# ------------------------------------------------------------------------------------------
# what to inject


def parse_rate(spec):
    """`KIND[@scope]=P` -> (key, P)."""
    key, _, value = spec.partition("=")
    kind = key.partition("@")[0]
    if kind not in KINDS:
        raise ValueError(f"unknown fault kind {kind!r} in {spec!r} (kinds: {', '.join(KINDS)})")
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate out of [0, 1] in {spec!r}")
    return key, rate


def parse_script_entry(spec):
    """`service:Operation#N=KIND` -> ((op, N), KIND)."""
    match = re.fullmatch(r"([^#=]+)#(\d+)=(\w+)", spec.strip())
    if not match or match.group(3) not in KINDS:
        raise ValueError(f"bad script entry {spec!r} (want service:Operation#N=KIND)")
    return (match.group(1), int(match.group(2))), match.group(3)


class FaultPlan:
    def __init__(self, seed, rates=(), script=()):
        self.seed = seed
        self.rates = dict(parse_rate(r) for r in rates)
        self.script = dict(parse_script_entry(s) for s in script)
        self.calls = Counter()
        self.counts = Counter()
        self.by_op = defaultdict(Counter)

    def rate(self, kind, service, operation):
        for key in (f"{kind}@{service}:{operation}", f"{kind}@{service}", kind):
            if key in self.rates:
                return self.rates[key]
        return 0.0

    def decide(self, service, operation):
        """Counts the call; returns (N, the fault kind or None)."""
        op = f"{service}:{operation}"
        self.calls[op] += 1
        nth = self.calls[op]
        kind = self.script.get((op, nth))
        if kind is None:
            rng = random.Random(f"{self.seed}/{op}/{nth}")
            for candidate in KINDS:
                if rng.random() < self.rate(candidate, service, operation):
                    kind = candidate
                    break
        if kind:
            self.counts[kind] += 1
            self.by_op[op][kind] += 1
        return nth, kind

    def snapshot(self):
        return {
            "seed": self.seed,
            "rates": self.rates,
            "script": [f"{op}#{n}={kind}" for (op, n), kind in self.script.items()],
            "counts": dict(self.counts),
            "calls": dict(self.calls),
            "by_op": {op: dict(kinds) for op, kinds in self.by_op.items()},
        }

    def update(self, change):
        if "rates" in change:
            self.rates = dict(parse_rate(f"{k}={v}") for k, v in change["rates"].items())
        if "script" in change:
            self.script = dict(parse_script_entry(s) for s in change["script"])
        if change.get("reset_counts"):
            self.calls.clear()
            self.counts.clear()
            self.by_op.clear()


# ------------------------------------------------------------------------------------------
# HTTP/1.1 on asyncio streams


async def read_head(reader):
    """(start line, [(name, value)]) or None at a clean end of the connection."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial.strip():
            return None
        raise BadRequest("connection closed inside a header") from e
    except asyncio.LimitOverrunError as e:
        raise BadRequest("header too large") from e
    lines = raw.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise BadRequest(f"bad header line {line!r}")
            headers.append((name.strip(), value.strip()))
    return lines[0], headers


async def read_body(reader, headers, until_eof=False):
    lower = {k.lower(): v for k, v in headers}
    if "chunked" in lower.get("transfer-encoding", "").lower():
        chunks = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
    if "content-length" in lower:
        return await reader.readexactly(int(lower["content-length"]))
    return await reader.read() if until_eof else b""


HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
              "trailer", "upgrade", "content-length"}


class FaultProxy:
    def __init__(self, upstream, plan, latency_ms=200, hold_secs=30.0, log_path=None):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port or 80)
        self.plan = plan
        self.latency = latency_ms / 1000.0
        self.hold_secs = hold_secs
        self.log = open(log_path, "a", buffering=1) if log_path else None
        self.seq = 0

    async def handle(self, reader, writer):
        try:
            while True:
                head = await read_head(reader)
                if head is None:
                    return
                start, headers = head
                method, target, version = (start.split(" ", 2) + ["", ""])[:3]
                body = await read_body(reader, headers)
                lower = {k.lower(): v for k, v in headers}
                if target.startswith("/__faults"):
                    await self.admin(writer, method, body)
                else:
                    keep = await self.proxy(reader, writer, method, target, headers, lower, body)
                    if not keep:
                        return
                if lower.get("connection", "").lower() == "close" or version == "HTTP/1.0":
                    return
        except (BadRequest, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
            await self.answer(writer, 400, [("Content-Type", "text/plain")],
                              f"bad request: {e}\n".encode(), close=True)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def proxy(self, reader, writer, method, target, headers, lower, body):
        """Forwards one request or injects its fault; False when the connection must end."""
        service, operation = operation_of(method, target, lower, body)
        nth, kind = self.plan.decide(service, operation)
        if kind:
            self.record(service, operation, nth, kind, body)
        if kind in ("http500", "http503", "throttle"):
            status, extra, payload = error_answer(kind, service, operation,
                                                  protocol_of(lower, service))
            await self.answer(writer, status, extra, payload)
            return True
        if kind == "reset":
            writer.transport.abort()
            return False
        if kind == "timeout":
            try:
                # Unanswered until the client gives up (it closes: EOF) or the hold ends.
                await asyncio.wait_for(reader.read(), self.hold_secs)
            except (asyncio.TimeoutError, ConnectionError, OSError):
                pass
            writer.transport.abort()
            return False
        if kind == "latency":
            await asyncio.sleep(self.latency)
        try:
            status, answer_headers, payload = await self.forward(method, target, headers, body)
        except (OSError, asyncio.IncompleteReadError, ValueError, BadRequest) as e:
            await self.answer(writer, 502, [("Content-Type", "text/plain")],
                              f"upstream failed: {e}\n".encode())
            return True
        if kind == "lost_answer":
            writer.transport.abort()
            return False
        if reader.at_eof():
            # Not injected: the client gave up on this try (its timeout) while upstream applied
            # it, as with a lost answer; logged so a repeat it causes is explained.
            self.record(service, operation, nth, GAVE_UP, body)
            return False
        try:
            await self.answer(writer, status, answer_headers, payload, head_only=method == "HEAD")
        except (ConnectionError, OSError):
            self.record(service, operation, nth, GAVE_UP, body)
            return False
        return True

    async def forward(self, method, target, headers, body):
        up_reader, up_writer = await asyncio.open_connection(*self.upstream, limit=MAX_HEADER_BYTES)
        try:
            lines = [f"{method} {target} HTTP/1.1"]
            lines += [f"{k}: {v}" for k, v in headers if k.lower() not in HOP_BY_HOP]
            lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
            up_writer.write("\r\n".join(lines).encode("latin-1") + body)
            await up_writer.drain()
            head = await read_head(up_reader)
            if head is None:
                raise BadRequest("upstream closed without answering")
            start, answer_headers = head
            status = int(start.split(" ", 2)[1])
            no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
            payload = b"" if no_body else await read_body(up_reader, answer_headers, until_eof=True)
            kept = [(k, v) for k, v in answer_headers if k.lower() not in HOP_BY_HOP]
            if method == "HEAD":
                kept += [(k, v) for k, v in answer_headers if k.lower() == "content-length"]
            return status, kept, payload
        finally:
            up_writer.close()

    async def answer(self, writer, status, headers, payload, close=False, head_only=False):
        lines = [f"HTTP/1.1 {status} {'OK' if status < 400 else 'Error'}"]
        lines += [f"{k}: {v}" for k, v in headers]
        if not head_only:
            lines.append(f"Content-Length: {len(payload)}")
        lines.append("Connection: close" if close else "Connection: keep-alive")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else payload))
        await writer.drain()

    async def admin(self, writer, method, body):
        if method == "POST":
            try:
                self.plan.update(json.loads(body or b"{}"))
            except (ValueError, TypeError, AttributeError) as e:
                await self.answer(writer, 400, [("Content-Type", "text/plain")],
                                  f"bad fault settings: {e}\n".encode())
                return
        elif method != "GET":
            await self.answer(writer, 405, [("Content-Type", "text/plain")], b"GET or POST\n")
            return
        payload = json.dumps(self.plan.snapshot()).encode()
        await self.answer(writer, 200, [("Content-Type", "application/json")], payload)

    def record(self, service, operation, nth, kind, body):
        if not self.log:
            return
        self.seq += 1
        self.log.write(json.dumps({
            "seq": self.seq, "t": time.time(), "op": f"{service}:{operation}", "call": nth,
            "kind": kind, "body": body[:LOGGED_BODY_CHARS].decode("utf-8", "replace"),
        }) + "\n")


async def serve(args):
    plan = FaultPlan(args.seed, args.rate, args.script)
    proxy = FaultProxy(args.upstream, plan, args.latency_ms, args.hold_secs, args.log)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", args.port, limit=MAX_HEADER_BYTES)
    port = server.sockets[0].getsockname()[1]
    print(f"listening {port} seed {args.seed}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="moto's URL, e.g. http://127.0.0.1:5000")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=None, help="default: a random one (printed)")
    parser.add_argument("--rate", action="append", default=[], metavar="KIND[@scope]=P")
    parser.add_argument("--script", action="append", default=[], metavar="svc:Op#N=KIND")
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--hold-secs", type=float, default=30.0,
                        help="longest a `timeout` fault holds a request")
    parser.add_argument("--log", help="JSON lines, one per injected fault")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 31)
    try:
        FaultPlan(args.seed, args.rate, args.script)
    except ValueError as e:
        parser.error(str(e))
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    return 0


class ProxyProcess:
    """This proxy in a child process (for tests and scripts/fault-suite): `.url`, `.port`,
    `.faults()` (the admin snapshot), `.configure(change)`, `.stop()`."""

    def __init__(self, upstream, seed, rates=(), script=(), log_path=None, stderr_path=None,
                 latency_ms=200, hold_secs=30.0, env=None):
        import subprocess

        argv = [sys.executable, __file__, "--upstream", upstream, "--seed", str(seed),
                "--latency-ms", str(latency_ms), "--hold-secs", str(hold_secs)]
        argv += [f"--rate={r}" for r in rates] + [f"--script={s}" for s in script]
        if log_path:
            argv += ["--log", str(log_path)]
        self._stderr = open(stderr_path, "ab") if stderr_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._stderr,
                                     stdin=subprocess.DEVNULL, env=env)
        line = self.proc.stdout.readline().decode().split()
        if len(line) < 2 or line[0] != "listening":
            self.stop()
            raise RuntimeError(f"fault proxy did not start: {line!r}")
        self.port = int(line[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def _admin(self, method, change=None):
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            body = json.dumps(change).encode() if change is not None else None
            conn.request(method, "/__faults", body=body)
            response = conn.getresponse()
            payload = response.read()
            if response.status != 200:
                raise RuntimeError(f"fault proxy admin answered {response.status}: {payload!r}")
            return json.loads(payload)
        finally:
            conn.close()

    def faults(self):
        return self._admin("GET")

    def configure(self, change):
        return self._admin("POST", change)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except Exception:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout:
            self.proc.stdout.close()
        if hasattr(self._stderr, "close"):
            self._stderr.close()


if __name__ == "__main__":
    sys.exit(main())
