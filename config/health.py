"""GET /healthz: is the database answering, is Redis answering, is a Celery worker alive?

200 when every check passes, else 503; each check reports whether it passed and how long it
took. The worker check reads the heartbeats workers write to Redis (``config.heartbeat``), so it
costs one Redis call and never waits on a worker. ``?checks=database,redis`` limits the checks
(the web container's own health check uses that: a stopped worker is not the web server's fault).
"""

import logging
import time

from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config import heartbeat

log = logging.getLogger(__name__)


class CheckFailed(Exception):
    """A probe answered, but not as a healthy service would."""


def _database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {}


def _redis() -> dict:
    cache.set("healthz", "1", timeout=10)
    if cache.get("healthz") != "1":
        raise CheckFailed("value written was not read back")
    return {}


def _worker() -> dict:
    workers = heartbeat.live_workers()
    if not workers:
        raise CheckFailed(f"no Celery worker heartbeat in the last {heartbeat.MAX_AGE:.0f} s")
    return {"workers": len(workers), "last_seen_s": min(workers.values())}


CHECKS = {"database": _database, "redis": _redis, "worker": _worker}


def _run(name: str, probe) -> dict:
    started = time.perf_counter()
    try:
        details = probe()
    except CheckFailed as exc:
        return {"ok": False, "ms": _ms(started), "error": str(exc)}
    except Exception as exc:  # any failure of a probe (driver, network) means "down"
        # The page is public: it names the kind of failure; the log has the details.
        log.warning("health check failed", extra={"check": name, "error": _describe(exc)})
        return {"ok": False, "ms": _ms(started), "error": type(exc).__name__}
    return {"ok": True, "ms": _ms(started), **details}


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


@never_cache
@require_GET
def healthz(request):
    wanted = request.GET.get("checks")
    names = list(CHECKS) if not wanted else [name.strip() for name in wanted.split(",") if name.strip()]
    unknown = [name for name in names if name not in CHECKS]
    if unknown or not names:
        return JsonResponse(
            {"error": f"unknown check {', '.join(unknown) or '(none)'}; known: {', '.join(CHECKS)}"},
            status=400,
        )
    checks = {name: _run(name, CHECKS[name]) for name in names}
    healthy = all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks}, status=200 if healthy else 503
    )
