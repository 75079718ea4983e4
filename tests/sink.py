"""A webhook subscriber for tests: records every request and checks its signature with the
official Standard Webhooks library.

    python tests/sink.py [--port 0] [--secret whsec_...]...

Prints `listening <port>` once ready. Behaviour is chosen by the request path, so one sink
serves many subscriptions:
    /ok/...            answer 200
    /status/<code>/... answer <code> every time
    /fail/<k>/...      answer 500 to the first k requests on this path, then 200
    /slow/<ms>/...     wait <ms> milliseconds, then 200
    /flap/...          answer 500 and 200 in turn (a subscription whose health keeps changing)
    /throttle/<k>/<s>/... answer 429 with `Retry-After: <s>` to the first k requests on this
                       path, then 200 (a subscriber asking for room)
    /hang/<s>/...      record the request at once, then answer nothing for <s> seconds (a
                       subscriber that hangs past the relay's delivery timeout)
GET /received returns the recorded requests as JSON; DELETE /received clears them.
"""

import argparse
import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


lock = threading.Lock()
received = []
counts = {}
secrets = []


def verify(body, headers):
    """The configured secrets whose signature is in the request."""
    if not secrets:
        return []
    # Imported only when asked to verify, so the sink also runs without the library.
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    ok = []
    for secret in secrets:
        try:
            # json_parse=False: bodies need not be JSON. The library decodes the body as UTF-8,
            # so a binary body cannot be checked with it (tests verify those bytes themselves).
            Webhook(secret).verify(body, headers, json_parse=False)
            ok.append(secret)
        except (WebhookVerificationError, UnicodeDecodeError):
            pass
    return ok


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, payload=b"ok", headers=()):
        self.send_response(code)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        if self.path.startswith("/received"):
            with lock:
                data = json.dumps(received).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self.reply(404, b"not found")

    def do_DELETE(self):
        with lock:
            received.clear()
            counts.clear()
        self.reply(200)

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        parts = [p for p in self.path.split("/") if p]
        with lock:
            counts[self.path] = counts.get(self.path, 0) + 1
            nth = counts[self.path]
        code = 200
        if len(parts) >= 3 and parts[0] == "throttle" and nth <= int(parts[1]):
            self.record(body, headers, 429)
            self.reply(429, b"slow down", headers=[("retry-after", parts[2])])
            return
        if len(parts) >= 2 and parts[0] == "hang":
            self.record(body, headers, None)
            time.sleep(float(parts[1]))
            try:
                self.reply(200)
            except OSError:
                pass  # the relay gave up waiting long ago
            return
        if len(parts) >= 2 and parts[0] == "status":
            code = int(parts[1])
        elif len(parts) >= 2 and parts[0] == "fail":
            code = 500 if nth <= int(parts[1]) else 200
        elif parts and parts[0] == "flap":
            code = 500 if nth % 2 else 200
        elif len(parts) >= 2 and parts[0] == "slow":
            time.sleep(int(parts[1]) / 1000.0)
        self.record(body, headers, code)
        self.reply(code)

    def record(self, body, headers, code):
        verified_with = verify(body, headers)
        with lock:
            received.append(
                {
                    "path": self.path,
                    "headers": headers,
                    "body_b64": base64.b64encode(body).decode(),
                    "verified_with": verified_with,
                    "status": code,
                    "at": time.time(),
                }
            )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--secret", action="append", default=[])
    args = parser.parse_args()
    secrets.extend(args.secret)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
