"""Container health probes for docker-compose, cheap enough to run every few seconds:

    python -m config.probe web       # this container's /healthz answers 200 (database, Redis)
    python -m config.probe worker    # this container's Celery worker wrote a heartbeat lately

Exit status 0 when healthy, 1 (with the reason on stderr) when not. No Django start-up: the web
probe speaks HTTP to gunicorn, the worker probe reads one Redis key.
"""

import os
import socket
import sys
import urllib.error
import urllib.request


def web() -> str | None:
    port = os.environ.get("PORT", "8000")
    host = (os.environ.get("ALLOWED_HOSTS", "localhost").split(",")[0].strip() or "localhost").lstrip(".")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/healthz?checks=database,redis",
        # Production settings redirect plain http and check the Host: look like the proxy does.
        headers={"Host": host, "X-Forwarded-Proto": "https"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return None if response.status == 200 else f"/healthz answered {response.status}"
    except urllib.error.HTTPError as exc:
        return f"/healthz answered {exc.code}: {exc.read(300).decode(errors='replace')}"
    except OSError as exc:
        return f"/healthz did not answer: {exc}"


def worker() -> str | None:
    from config import heartbeat

    hostname = os.environ.get("CELERY_HOSTNAME") or f"celery@{socket.gethostname()}"
    try:
        alive = heartbeat.live_workers(conn=heartbeat.client(os.environ["REDIS_URL"]))
    except Exception as exc:  # any Redis failure means this probe cannot vouch for the worker
        return f"cannot read heartbeats: {exc}"
    return None if hostname in alive else f"no heartbeat from {hostname} in {heartbeat.MAX_AGE:.0f} s"


def main(argv: list[str]) -> int:
    probes = {"web": web, "worker": worker}
    if len(argv) != 1 or argv[0] not in probes:
        print(f"usage: python -m config.probe {'|'.join(probes)}", file=sys.stderr)
        return 2
    problem = probes[argv[0]]()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
