"""Benchmark: how long the local provider takes to accept a 1,000-recipient batch call.

    python -m localprovider.bench [--calls 20] [--recipients 1000] [--html-kb 60]

Starts ``python -m localprovider serve`` on a free port with a temporary database, posts
calls shaped like Anymail's Mailgun batch (merge data, merge headers, merge metadata; form
encoded as Anymail sends them), and prints the time per call and the storage per recipient.
"""

import argparse
import base64
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests


def token(call: int, n: int, purpose: str) -> str:
    """Random-looking like a signed subscriber token (so it compresses like one)."""
    digest = hashlib.sha256(f"{call}:{n}:{purpose}".encode()).digest()
    return base64.urlsafe_b64encode(digest * 2).decode().rstrip("=")


def batch_payload(call: int, recipients: int, html_kb: int) -> dict:
    addresses = [f"reader{call}-{n}@example.org" for n in range(recipients)]
    variables = {
        address: {
            "name": f"Reader {n}",
            "unsubscribe_url": f"https://news.example.com/unsubscribe/{token(call, n, 'u')}/",
            "preferences_url": f"https://news.example.com/preferences/{token(call, n, 'p')}/",
            "one_click_url": f"https://news.example.com/unsubscribe/{token(call, n, 'u')}/one-click/?d=1",
            "h:List-Unsubscribe": f"<https://news.example.com/unsubscribe/{token(call, n, 'u')}/one-click/?d=1>",
            "v:subscriber": str(n),
        }
        for n, address in enumerate(addresses)
    }
    article = (
        "<tr><td><h2>A headline of the day</h2><p>" + "Lorem ipsum dolor sit amet. " * 30 + "</p></td></tr>"
    )
    html = "<html><body><table>" + article * max(1, html_kb * 1024 // len(article)) + "</table>"
    html += '<a href="%recipient.unsubscribe_url%">Unsubscribe</a></body></html>'
    return {
        "from": "The Courier <newsletter@example.com>",
        "to": addresses,
        "subject": "Your digest, %recipient.name%",
        "text": "Hello %recipient.name%\n\nUnsubscribe: %recipient.unsubscribe_url%",
        "html": html,
        "h:List-Unsubscribe": "%recipient.h:List-Unsubscribe%",
        "h:List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "h:X-Digest-Id": "1",
        "h:X-Idempotency-Key": f"bench-{call}",
        "v:subscriber": "%recipient.v:subscriber%",
        "o:tag": ["digest"],
        "recipient-variables": json.dumps(variables),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--recipients", type=int, default=1000)
    parser.add_argument("--html-kb", type=int, default=60)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.sqlite3"
        server = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "localprovider", "serve", "--port", "0", "--db", str(db)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            url = server.stdout.readline().strip().removeprefix("localprovider listening on ")
            session = requests.Session()
            timings, server_timings = [], []
            size = 0
            for n in range(args.calls):
                # Encoded before the clock starts: the figure is the provider's time.
                payload = requests.models.RequestEncodingMixin._encode_params(
                    batch_payload(n, args.recipients, args.html_kb)
                )
                size = len(payload)
                started = time.perf_counter()
                response = session.post(
                    f"{url}/v3/example.com/messages",
                    data=payload,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                    auth=("api", "local-provider-key"),
                    timeout=60,
                )
                timings.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
                server_timings.append(float(response.headers["Server-Timing"].rpartition("=")[2]))

            def timed(path: str, **params) -> tuple[float, requests.Response]:
                started = time.perf_counter()
                response = session.get(f"{url}{path}", params=params, timeout=300)
                response.raise_for_status()
                return (time.perf_counter() - started) * 1000, response

            stats_ms, response = timed("/api/stats")
            stats = response.json()
            read_ms, _ = timed("/api/messages", limit=args.recipients)
            one_ms, _ = timed("/api/messages", to=f"reader{args.calls // 2}-7@example.org")
            inbox_ms, _ = timed("/")
        finally:
            server.terminate()
            server.wait()
        db_bytes = sum(p.stat().st_size for p in Path(tmp).iterdir())
    timings.sort()
    server_timings.sort()
    print(f"{args.calls} calls of {args.recipients} recipients, {size / 1024:.0f} KB form each")
    print(
        f"accept per call: median {statistics.median(timings):.1f} ms, "
        f"p95 {timings[int(len(timings) * 0.95) - 1]:.1f} ms, max {timings[-1]:.1f} ms (round trip)"
    )
    print(
        f"of which in the provider: median {statistics.median(server_timings):.1f} ms, "
        f"p95 {server_timings[int(len(server_timings) * 0.95) - 1]:.1f} ms (parse, validate, store, commit)"
    )
    print(f"read the latest {args.recipients} personalised messages (html included): {read_ms:.0f} ms")
    print(
        f"one recipient's messages: {one_ms:.0f} ms; inbox page: {inbox_ms:.0f} ms; "
        f"full stats (distinct counts): {stats_ms:.0f} ms"
    )
    per_recipient = db_bytes / max(stats["messages"], 1)
    print(
        f"recorded {stats['messages']} messages; database {db_bytes / 1e6:.1f} MB, "
        f"{per_recipient:.0f} bytes per recipient (about {per_recipient * 1e6 / 1e9:.1f} GB per million)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
