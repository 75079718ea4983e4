"""A loopback stand-in of GitHub's webhook deliveries API, for `relay reconcile` tests.

Follows the documented requests and responses of:
- List deliveries for a repository webhook
  https://docs.github.com/en/rest/repos/webhooks#list-deliveries-for-a-repository-webhook
  `GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries?per_page=&cursor=`: a JSON array of
  deliveries, newest first (`id`, `guid`, `delivered_at`, `redelivery`, `duration`, `status`,
  `status_code`, `event`, `action`, `installation_id`, `repository_id`, `throttled_at`), and the
  next page in `Link: <...&cursor=...>; rel="next"`
  (https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api).
  The same for `/orgs/{org}/hooks/{hook_id}/deliveries` and `/app/hook/deliveries`.
- Redeliver a delivery for a repository webhook
  https://docs.github.com/en/rest/repos/webhooks#redeliver-a-delivery-for-a-repository-webhook
  `POST .../deliveries/{delivery_id}/attempts` answers `202 Accepted`; GitHub then sends the
  payload again with the same `X-GitHub-Delivery` guid, as a new delivery marked `redelivery`.
- Authentication: `Authorization: Bearer <token>` (or `token <token>`); a bad token gets
  `401 {"message": "Bad credentials", ...}`
  (https://docs.github.com/en/rest/authentication/authenticating-to-the-rest-api).
- App mode (`app=(app_id, public_key_pem)`, for `app/hook`): the App's own webhook is called with
  `Authorization: Bearer <JWT>` signed by the App's private key
  (https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app):
  RS256, `iss` the App's client ID or App ID, `iat` not in the future, `exp` not past and at most
  10 minutes after `iat`. The JWT is verified with PyJWT against the App's public key; anything
  else gets the same 401 as a bad token.
- Rate limits: a secondary limit answers 429 (or 403) with `Retry-After`
  (https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api).

Deliveries are signed the way GitHub signs them (`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of
the body>`, https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries),
by a `signer` the test passes in (the official @octokit/webhooks-methods `sign`); a dropped
delivery is recorded as failed and never reaches the receiver.
"""

import json
import re
import threading
import uuid
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import jwt
import requests

from .loopback import JsonHandler, LoopbackServer

DELIVERIES = re.compile(r"^/(repos/[^/]+/[^/]+/hooks/\d+|orgs/[^/]+/hooks/\d+|app/hook)/deliveries$")
ATTEMPTS = re.compile(
    r"^/(repos/[^/]+/[^/]+/hooks/\d+|orgs/[^/]+/hooks/\d+|app/hook)/deliveries/(\d+)/attempts$")


class GithubApi(LoopbackServer):
    """The stand-in: `.url`, `.send(...)`, `.requests`, `.redeliveries`, `.rate_limit(...)`."""

    def __init__(self, token, hook, receiver_url, secret, signer, page_size=2, app=None):
        self.token = token
        self.app = app  # (app id, public key PEM): requests need the App's JWT, not the token
        self.jwt_claims = []  # the claims of every JWT accepted, in app mode
        self.hook = hook  # e.g. repos/octo/hello/hooks/1
        self.receiver_url = receiver_url
        self.secret = secret
        self.signer = signer  # [(secret, payload)] -> [signature header value]
        self.page_size = page_size
        self.deliveries = []  # newest first
        self.requests = []  # (method, path) of every API request
        self.redeliveries = []  # (delivery id, receiver's status)
        self._next_id = 1000
        self._limited = []  # (status, retry_after) answers still to give
        self._lock = threading.Lock()
        self._serve()

    def rate_limit(self, retry_after, times=1, status=429):
        """The next `times` API requests answer `status` with `Retry-After: retry_after`."""
        self._limited.extend([(status, retry_after)] * times)

    def send(self, event, payload, drop=False):
        """Delivers one event to the receiver (or, with drop, records a failed delivery that
        never reached it); returns its guid."""
        body = json.dumps(payload)
        signature = self.signer([(self.secret, body)])[0]
        guid = str(uuid.uuid4())
        delivery = self._record(guid, event, payload.get("action"), body, signature, redelivery=False)
        if drop:
            delivery.update(status="failed to connect to host", status_code=0)
        else:
            self._post(delivery)
        return guid

    def _record(self, guid, event, action, body, signature, redelivery):
        with self._lock:
            self._next_id += 1
            delivery = {
                "id": self._next_id,
                "guid": guid,
                "delivered_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "redelivery": redelivery,
                "duration": 0.01,
                "status": "OK",
                "status_code": 202,
                "event": event,
                "action": action,
                "installation_id": None,
                "repository_id": 1,
                "throttled_at": None,
                # Not part of the listing: what is sent.
                "_body": body,
                "_signature": signature,
            }
            self.deliveries.insert(0, delivery)
            return delivery

    def _post(self, delivery):
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/standin",
            "X-GitHub-Event": delivery["event"],
            "X-GitHub-Delivery": delivery["guid"],
            "X-GitHub-Hook-ID": self.hook.rsplit("/", 1)[-1],
            "X-Hub-Signature-256": delivery["_signature"],
        }
        try:
            response = requests.post(self.receiver_url, data=delivery["_body"].encode(),
                                     headers=headers, timeout=10)
            delivery.update(status="OK" if response.ok else "Invalid HTTP Response: "
                            f"{response.status_code}", status_code=response.status_code)
        except requests.RequestException:
            delivery.update(status="failed to connect to host", status_code=0)
        return delivery["status_code"]

    def verify_app_jwt(self, token):
        """The claims of `token` when it is a JWT of the App as GitHub accepts one, else None."""
        if token is None:
            return None
        app_id, public_key = self.app
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, public_key, algorithms=["RS256"], issuer=app_id,
                                options={"require": ["iat", "exp", "iss"]})
        except jwt.PyJWTError:
            return None
        now = datetime.now(timezone.utc).timestamp()
        if header.get("typ") != "JWT" or not isinstance(claims["iss"], str):
            return None
        if claims["exp"] - claims["iat"] > 600 or claims["iat"] > now:
            return None
        return claims

    def _listing(self):
        return [{k: v for k, v in d.items() if not k.startswith("_")} for d in self.deliveries]

    def _handler(self):
        api = self

        class Handler(JsonHandler):
            content_type = "application/json; charset=utf-8"

            def _authorized(self):
                auth = self.headers.get("Authorization", "")
                if api.app is None:
                    return auth in (f"Bearer {api.token}", f"token {api.token}")
                claims = api.verify_app_jwt(auth.removeprefix("Bearer ") if
                                            auth.startswith("Bearer ") else None)
                if claims is None:
                    return False
                api.jwt_claims.append(claims)
                return True

            def _refused(self):
                if not self._authorized():
                    self._answer(401, {"message": "Bad credentials",
                                       "documentation_url": "https://docs.github.com/rest"})
                    return True
                if api._limited:
                    status, retry_after = api._limited.pop(0)
                    self._answer(status, {
                        "message": "You have exceeded a secondary rate limit.",
                        "documentation_url": "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api"},
                        [("Retry-After", str(retry_after))])
                    return True
                return False

            def do_GET(self):
                parts = urlsplit(self.path)
                api.requests.append(("GET", parts.path))
                match = DELIVERIES.match(parts.path)
                if not match or match.group(1) != api.hook:
                    return self._answer(404, {"message": "Not Found"})
                if self._refused():
                    return None
                query = parse_qs(parts.query)
                per_page = min(int(query.get("per_page", ["30"])[0]), 100, api.page_size)
                start = int(query.get("cursor", ["0"])[0] or 0)
                listing = api._listing()
                page = listing[start:start + per_page]
                headers = []
                if start + per_page < len(listing):
                    next_url = (f"{api.url}/{api.hook}/deliveries?per_page={per_page}"
                                f"&cursor={start + per_page}")
                    headers.append(("Link", f'<{next_url}>; rel="next"'))
                return self._answer(200, page, headers)

            def do_POST(self):
                parts = urlsplit(self.path)
                api.requests.append(("POST", parts.path))
                match = ATTEMPTS.match(parts.path)
                if not match or match.group(1) != api.hook:
                    return self._answer(404, {"message": "Not Found"})
                if self._refused():
                    return None
                wanted = int(match.group(2))
                original = next((d for d in api.deliveries if d["id"] == wanted), None)
                if original is None:
                    return self._answer(404, {"message": "Not Found"})
                self._answer(202, {})
                again = api._record(original["guid"], original["event"], original["action"],
                                    original["_body"], original["_signature"], redelivery=True)
                api.redeliveries.append((wanted, api._post(again)))
                return None

        return Handler
