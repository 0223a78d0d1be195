"""A small client for the local provider's control API, for tests, benchmarks and scripts."""

import time

import requests


class LocalProviderClient:
    """Talks to a running local provider at ``base_url`` (``http://127.0.0.1:8025``)."""

    def __init__(self, base_url: str, timeout: float = 30):
        self.url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    @property
    def api_url(self) -> str:
        """The value for Anymail's MAILGUN_API_URL."""
        return f"{self.url}/v3"

    def _get(self, path: str, **params) -> object:
        response = self.session.get(f"{self.url}{path}", params=params, timeout=self.timeout)
        response.raise_for_status()
        return response.json()

    def _post(self, path: str, data: dict) -> object:
        response = self.session.post(f"{self.url}{path}", json=data, timeout=self.timeout)
        response.raise_for_status()
        return response.json()

    def messages(self, to: str | None = None, subject: str | None = None, limit: int = 10_000) -> list[dict]:
        """Recorded messages, newest first, personalised as each recipient received them."""
        params = {"limit": limit}
        if to:
            params["to"] = to
        if subject:
            params["subject"] = subject
        return self._get("/api/messages", **params)

    def message(self, message_id: int) -> dict:
        return self._get(f"/api/messages/{message_id}")

    def stats(self) -> dict:
        return self._get("/api/stats")

    def reset(self) -> None:
        """Forget every message and counter, clear faults and marks, restore webhook settings."""
        self._post("/api/reset", {})

    def set_faults(self, **faults) -> dict:
        """Replace the faults (no arguments clears them); see README.md for the names."""
        return self._post("/api/faults", faults)

    def clear_faults(self) -> dict:
        return self._post("/api/faults", {})

    def mark(self, address: str, event: str) -> None:
        """Make later sends to ``address`` produce ``event`` webhooks (bounce, soft-bounce,
        complain, open, click, unsubscribe; "delivered" clears)."""
        self._post("/api/marks", {"address": address, "event": event})

    def configure(self, **settings) -> dict:
        """webhook_url=..., webhook_auth="user:password", webhook_signing_key=..."""
        return self._post("/api/config", settings)

    def wait_for(self, count: int, timeout: float = 30) -> list[dict]:
        """Wait until at least ``count`` messages are recorded; return the newest ``count``.

        Raises TimeoutError naming how many arrived.
        """
        deadline = time.monotonic() + timeout
        while True:
            recorded = self._get("/api/stats")["messages"]
            if recorded >= count:
                return self.messages(limit=max(count, 1)) if count else []
            if time.monotonic() > deadline:
                raise TimeoutError(f"{recorded} of {count} messages recorded after {timeout}s")
            time.sleep(0.05)

    def wait_for_webhooks(self, timeout: float = 30) -> dict:
        """Wait until every queued webhook is posted or given up; return the stats."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self._get("/api/stats")
            if stats["webhooks_pending"] == 0:
                return stats
            if time.monotonic() > deadline:
                raise TimeoutError(f"{stats['webhooks_pending']} webhooks still pending after {timeout}s")
            time.sleep(0.05)
