"""Mailgun tracking webhooks, posted from background threads after a call is accepted.

The request thread only queues the call id; a producer thread turns it into events (one or
more per recipient, by the marks set through ``POST /api/marks``) into a bounded queue that a
few sender threads post, so a 1,000-recipient call neither blocks nor fills memory.
"""

import hashlib
import hmac
import logging
import queue
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import requests

from .calls import Call
from .store import Store

log = logging.getLogger("localprovider.webhooks")

MARK_EVENTS = ("bounce", "soft-bounce", "complain", "open", "click", "unsubscribe")
# Engagement follows delivery; bounces replace it.
EVENTS_FOR_MARK = {
    None: ("delivered",),
    "bounce": ("failed-permanent",),
    "soft-bounce": ("failed-temporary",),
    "complain": ("delivered", "complained"),
    "open": ("delivered", "opened"),
    "click": ("delivered", "opened", "clicked"),
    "unsubscribe": ("delivered", "unsubscribed"),
}
ATTEMPTS = 3


@dataclass
class WebhookConfig:
    url: str = ""
    signing_key: str = "local-webhook-signing-key"
    auth: str = "local:webhook-secret"  # "user:password" unless the URL carries its own

    def target(self) -> tuple[str, tuple[str, str] | None]:
        """The URL without credentials, and the basic auth to send."""
        parts = urlsplit(self.url)
        if parts.username is not None:
            netloc = parts.hostname or ""
            if parts.port:
                netloc = f"{netloc}:{parts.port}"
            return urlunsplit(parts._replace(netloc=netloc)), (parts.username, parts.password or "")
        if self.auth:
            user, _, password = self.auth.partition(":")
            return self.url, (user, password)
        return self.url, None


def sign(signing_key: str, timestamp: str, token: str) -> str:
    return hmac.new(signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()


def event_data(kind: str, call: Call, message: dict, now: float) -> dict:
    """Mailgun's ``event-data`` for one recipient: what Anymail's tracking view reads."""
    data = {
        "event": kind,
        "id": secrets.token_urlsafe(16),
        "timestamp": now,
        "log-level": "info",
        "recipient": message["recipient"],
        "recipient-domain": message["recipient"].rpartition("@")[2],
        "tags": message["tags"],
        "user-variables": message["metadata"],
        "envelope": {"sender": call.sender, "targets": message["recipient"], "transport": "smtp"},
        "message": {
            "headers": {
                "to": message["to"],
                "message-id": message["message_id"].strip("<>"),
                "from": message["from"],
                "subject": message["subject"],
            },
            "attachments": [],
            "size": len(call.html) + len(call.text),
        },
        "flags": {
            "is-routed": False,
            "is-authenticated": True,
            "is-system-test": False,
            "is-test-mode": False,
        },
    }
    if kind == "delivered":
        data["delivery-status"] = {"code": 250, "message": "OK", "description": "", "attempt-no": 1}
    elif kind == "failed-permanent":
        data.update(event="failed", severity="permanent", reason="bounce", **{"log-level": "error"})
        data["delivery-status"] = {
            "code": 550,
            "message": "5.1.1 The email account that you tried to reach does not exist",
            "description": "Not delivered: the mailbox does not exist",
            "attempt-no": 1,
        }
    elif kind == "failed-temporary":
        data.update(event="failed", severity="temporary", reason="generic", **{"log-level": "warn"})
        data["delivery-status"] = {
            "code": 452,
            "message": "4.2.2 The email account that you tried to reach is over quota",
            "description": "Mailbox full, will retry",
            "attempt-no": 1,
        }
    elif kind == "clicked":
        data["url"] = _first_link(call.html) or "https://example.com/"
    if kind in ("opened", "clicked", "unsubscribed", "complained"):
        data["client-info"] = {
            "client-name": "Local",
            "client-type": "browser",
            "user-agent": "localprovider",
        }
    return data


def _first_link(html: str) -> str | None:
    start = html.find('href="http')
    if start < 0:
        return None
    start += len('href="')
    end = html.find('"', start)
    return html[start:end] if end > start else None


class WebhookDispatcher:
    """Queues calls, posts their events, counts what was sent and what failed."""

    def __init__(self, store: Store, config: WebhookConfig, senders: int = 4):
        self.store = store
        self.config = config
        self.generation = 0
        self._calls: queue.Queue = queue.Queue()
        self._events: queue.Queue = queue.Queue(maxsize=2000)
        self._lock = threading.Lock()
        self.sent = 0
        self.failed = 0
        self._pending = 0
        self._local = threading.local()
        threading.Thread(target=self._produce, name="webhook-producer", daemon=True).start()
        for n in range(senders):
            threading.Thread(target=self._send_loop, name=f"webhook-sender-{n}", daemon=True).start()

    # --- public ----------------------------------------------------------------------------
    def enqueue(self, call_id: int) -> None:
        if not self.config.url:
            return
        with self._lock:
            self._pending += 1
            generation = self.generation
        self._calls.put((generation, call_id))

    def reset(self, config: WebhookConfig) -> None:
        """Forget queued work (a new generation) and counts; take ``config``."""
        with self._lock:
            self.generation += 1
            self.config = config
            self.sent = self.failed = 0
            self._pending = 0

    def figures(self) -> dict[str, int]:
        with self._lock:
            return {
                "webhooks_sent": self.sent,
                "webhooks_failed": self.failed,
                "webhooks_pending": self._pending,
            }

    # --- threads ---------------------------------------------------------------------------
    def _current(self, generation: int) -> bool:
        return generation == self.generation

    def _done(self, generation: int, *, sent: int = 0, failed: int = 0, finished: int = 1) -> None:
        with self._lock:
            if generation == self.generation:
                self.sent += sent
                self.failed += failed
                self._pending -= finished

    def _produce(self) -> None:
        while True:
            generation, call_id = self._calls.get()
            try:
                self._produce_call(generation, call_id)
            except Exception:
                log.exception("could not build webhook events for call %s", call_id)
            finally:
                self._done(generation)

    def _produce_call(self, generation: int, call_id: int) -> None:
        call = self.store.call(call_id)
        if call is None or not self._current(generation):
            return
        marks = self.store.marks()
        config = self.config
        for message in self.store.expand_rows(self.store.call_messages(call), bodies=False):
            for kind in EVENTS_FOR_MARK[marks.get(message["recipient"].lower())]:
                if not self._current(generation):
                    return
                with self._lock:
                    self._pending += 1
                self._events.put((generation, config, event_data(kind, call, message, time.time())))

    def _send_loop(self) -> None:
        session = requests.Session()
        while True:
            generation, config, data = self._events.get()
            if not self._current(generation):
                self._done(generation)
                continue
            ok = self._post(session, config, data)
            self._done(generation, sent=int(ok), failed=int(not ok))

    def _post(self, session: requests.Session, config: WebhookConfig, data: dict) -> bool:
        url, auth = config.target()
        for attempt in range(ATTEMPTS):
            timestamp = str(int(time.time()))
            token = secrets.token_hex(25)
            body = {
                "signature": {
                    "timestamp": timestamp,
                    "token": token,
                    "signature": sign(config.signing_key, timestamp, token),
                },
                "event-data": data,
            }
            try:
                response = session.post(url, json=body, auth=auth, timeout=10)
            except requests.RequestException as exc:
                log.warning("webhook %s to %s failed: %s", data["event"], url, exc)
            else:
                if response.ok:
                    return True
                log.warning("webhook %s to %s answered %s", data["event"], url, response.status_code)
                if 400 <= response.status_code < 500 and response.status_code != 429:
                    return False  # refused: retrying the same event cannot help
            if attempt + 1 < ATTEMPTS:
                time.sleep(0.2 * 2**attempt)
        return False
