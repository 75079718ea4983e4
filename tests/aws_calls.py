"""A recording forwarder between the code under test and the moto server.

Each function gets its own `CallRecorder` as its AWS endpoint, so the AWS API calls each one
makes are counted by IAM action (DynamoDB TransactWriteItems is authorized per item, so its
items count as PutItem / UpdateItem / DeleteItem / ConditionCheckItem). `fail(action, n)`
answers the next n calls of an action with a 500, as an AWS outage would, without touching
moto. Loopback only.
"""

import http.client
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# X-Amz-Target prefixes of the JSON protocols the Rust SDK speaks, by IAM service prefix.
TARGETS = {"DynamoDB_20120810": "dynamodb", "AmazonSQS": "sqs", "AmazonSSM": "ssm",
           "secretsmanager": "secretsmanager"}
TRANSACT_ITEMS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                  "ConditionCheck": "ConditionCheckItem"}


def s3_action(method, path):
    """The IAM action of an S3 REST request on an object (path-style addressing, as on
    loopback), e.g. "s3:PutObject"; calls on a bucket itself are named by method."""
    parts = [p for p in path.partition("?")[0].split("/") if p]
    if len(parts) < 2:
        return f"s3:{method} bucket"
    return {"PUT": "s3:PutObject", "GET": "s3:GetObject", "HEAD": "s3:GetObject",
            "DELETE": "s3:DeleteObject"}.get(method, f"s3:{method} object")


def iam_actions(target, body):
    """The IAM actions one request needs, e.g. ["dynamodb:GetItem"]."""
    prefix, _, operation = (target or "").partition(".")
    service = TARGETS.get(prefix)
    if not service:
        return [f"unknown:{target}"]
    if operation == "TransactWriteItems":
        items = json.loads(body or b"{}").get("TransactItems", [])
        return [f"dynamodb:{TRANSACT_ITEMS[kind]}" for item in items for kind in item]
    return [f"{service}:{operation}"]


class CallRecorder:
    def __init__(self, upstream):
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname, parts.port)
        self._lock = threading.Lock()
        self.calls = Counter()
        self._failures = Counter()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.forward("POST")

            # S3 speaks REST: the method and the path name the operation.
            def do_PUT(self):
                self.forward("PUT")

            def do_GET(self):
                self.forward("GET")

            def do_DELETE(self):
                self.forward("DELETE")

            def do_HEAD(self):
                self.forward("HEAD")

            def read_body(self):
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def forward(self, method):
                body = self.read_body()
                target = self.headers.get("X-Amz-Target")
                if method == "POST":
                    actions = iam_actions(target, body)
                else:
                    actions = [s3_action(method, self.path)]
                with recorder._lock:
                    recorder.calls.update(actions)
                    inject = any(recorder._failures[a] > 0 for a in actions)
                    for a in actions:
                        if recorder._failures[a] > 0:
                            recorder._failures[a] -= 1
                if inject:
                    payload = json.dumps({"__type": "InternalFailure",
                                          "message": "injected by the test"}).encode()
                    self.send_response(500)
                    self.send_header("Content-Type", "application/x-amz-json-1.0")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(*recorder._upstream, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in ("host", "connection")}
                    headers = {k: v for k, v in headers.items()
                               if k.lower() != "transfer-encoding"}
                    conn.request(method, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                finally:
                    conn.close()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("content-length", "connection", "transfer-encoding",
                                           "server", "date"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def fail(self, action, times):
        with self._lock:
            self._failures[action] += times

    def clear_failures(self):
        with self._lock:
            self._failures.clear()

    def actions(self):
        with self._lock:
            return set(self.calls)

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
