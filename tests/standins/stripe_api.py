"""A loopback stand-in of Stripe's events API, for `relay reconcile` tests.

Follows the documented requests and responses of:
- List all events https://docs.stripe.com/api/events/list
  `GET /v1/events?limit=&created[gte]=&types[]=&starting_after=`: `{"object": "list", "url":
  "/v1/events", "has_more": bool, "data": [event, ...]}`, newest first, events of the last 30
  days; the event object https://docs.stripe.com/api/events/object (`id`, `object: "event"`,
  `api_version`, `created`, `data.object`, `livemode`, `pending_webhooks`, `request`, `type`).
- Pagination https://docs.stripe.com/api/pagination: `limit` 1-100, `starting_after` an object
  id; the next page starts after the last id of this one while `has_more`.
- Authentication https://docs.stripe.com/api/authentication: the secret key as a bearer token;
  a wrong key gets 401 with `{"error": {"type": "invalid_request_error", ...}}`
  (https://docs.stripe.com/api/errors).
- Rate limits https://docs.stripe.com/rate-limits: 429 with a `rate_limit_error`; the stand-in
  adds `Retry-After` to test that it is honoured.

Webhooks are signed the way Stripe signs them (`Stripe-Signature: t=...,v1=...`,
https://docs.stripe.com/webhooks#verify-events), with the official `stripe` library; a dropped
event is listed by the API but never reaches the receiver.
"""

import json
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import requests

from test_providers_live import stripe_header  # the official stripe library's signature

from .loopback import JsonHandler, LoopbackServer


class StripeApi(LoopbackServer):
    """The stand-in: `.url`, `.send(...)`, `.requests`, `.rate_limit(...)`."""

    def __init__(self, api_key, receiver_url, secret, page_size=2):
        self.api_key = api_key
        self.receiver_url = receiver_url
        self.secret = secret
        self.page_size = page_size
        self.events = []  # newest first
        self.requests = []  # (path, query) of every API request
        self._limited = []  # Retry-After values of the 429s still to give
        self._lock = threading.Lock()
        self._serve()

    def rate_limit(self, retry_after, times=1):
        self._limited.extend([retry_after] * times)

    def send(self, event_type, data_object, drop=False):
        """Creates an event and sends its webhook (unless dropped); returns its id."""
        event = {
            "id": f"evt_{uuid.uuid4().hex[:24]}",
            "object": "event",
            "api_version": "2024-06-20",
            "created": int(time.time()),
            "data": {"object": data_object},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }
        with self._lock:
            self.events.insert(0, event)
        if not drop:
            payload = json.dumps(event)
            header = stripe_header(payload, self.secret, int(time.time()))
            response = requests.post(self.receiver_url, data=payload.encode(), timeout=10,
                                     headers={"Content-Type": "application/json; charset=utf-8",
                                              "Stripe-Signature": header})
            assert response.status_code == 202, (response.status_code, response.text)
        return event["id"]

    def _handler(self):
        api = self

        class Handler(JsonHandler):

            def do_GET(self):
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                api.requests.append((parts.path, query))
                if parts.path != "/v1/events":
                    return self._answer(404, {"error": {"type": "invalid_request_error",
                                                        "message": "Unrecognized request URL"}})
                if self.headers.get("Authorization", "") != f"Bearer {api.api_key}":
                    return self._answer(401, {"error": {
                        "type": "invalid_request_error",
                        "message": "Invalid API Key provided: sk_test_****"}})
                if api._limited:
                    retry_after = api._limited.pop(0)
                    return self._answer(429, {"error": {
                        "type": "rate_limit_error", "code": "rate_limit",
                        "message": "Request rate limit exceeded."}},
                        [("Retry-After", str(retry_after))])
                limit = min(int(query.get("limit", ["10"])[0]), 100, api.page_size)
                since = int(query.get("created[gte]", ["0"])[0])
                types = query.get("types[]") or query.get("type")
                matching = [e for e in api.events if e["created"] >= since
                            and (not types or e["type"] in types)]
                after = query.get("starting_after", [None])[0]
                if after is not None:
                    ids = [e["id"] for e in matching]
                    if after not in ids:
                        return self._answer(400, {"error": {
                            "type": "invalid_request_error",
                            "message": f"No such event: '{after}'"}})
                    matching = matching[ids.index(after) + 1:]
                page = matching[:limit]
                return self._answer(200, {"object": "list", "url": "/v1/events",
                                          "has_more": len(matching) > limit, "data": page})

        return Handler
