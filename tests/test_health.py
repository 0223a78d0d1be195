"""GET /healthz: database, Redis and a live Celery worker, each with its time; 503 when one is down."""

import time

import pytest

from config import heartbeat


@pytest.mark.django_db
def test_health_is_unavailable_without_a_worker_and_says_which_check_failed(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]
    assert body["checks"]["worker"]["ok"] is False
    assert "no Celery worker heartbeat" in body["checks"]["worker"]["error"]
    assert all(isinstance(check["ms"], float) for check in body["checks"].values())


@pytest.mark.worker
def test_health_is_ok_while_a_real_worker_runs(client, celery_worker):
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    checks = response.json()["checks"]
    assert set(checks) == {"database", "redis", "worker"}
    assert checks["worker"]["workers"] == 1
    assert checks["worker"]["last_seen_s"] < heartbeat.MAX_AGE
    assert all(check["ok"] and check["ms"] >= 0 for check in checks.values())

    # A worker that shuts down cleanly takes its heartbeat with it (the bootstep's stop).
    heartbeat.forget(celery_worker.hostname)
    assert client.get("/healthz").status_code == 503


@pytest.mark.django_db
def test_a_worker_not_heard_from_recently_counts_as_down(client):
    heartbeat.beat("celery@stale", now=time.time() - heartbeat.MAX_AGE - 5)
    assert client.get("/healthz").json()["checks"]["worker"]["ok"] is False
    heartbeat.beat("celery@fresh")
    checks = client.get("/healthz").json()["checks"]
    assert checks["worker"]["ok"] and checks["worker"]["workers"] == 1


@pytest.mark.django_db
def test_the_web_container_can_ask_for_its_own_checks_only(client):
    response = client.get("/healthz?checks=database,redis")
    assert response.status_code == 200
    assert set(response.json()["checks"]) == {"database", "redis"}


@pytest.mark.django_db
def test_an_unknown_check_is_a_clear_400(client):
    response = client.get("/healthz?checks=database,<script>")
    assert response.status_code == 400
    assert "unknown check" in response.json()["error"]


@pytest.mark.django_db
def test_health_is_unavailable_when_redis_is_down(client, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        }
    }
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    started = time.monotonic()
    response = client.get("/healthz")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis"]["ok"] is False and checks["worker"]["ok"] is False
    assert checks["database"]["ok"] is True
    # A public page: the kind of failure, not the addresses and messages behind it.
    assert checks["redis"]["error"] == "ConnectionError" and "127.0.0.1" not in response.content.decode()
    assert elapsed < 30  # sanity bound only: short socket timeouts keep the page from hanging


@pytest.mark.django_db
def test_health_does_not_accept_writes(client):
    assert client.post("/healthz").status_code == 405


@pytest.mark.worker
def test_a_real_worker_process_is_seen_and_its_clean_shutdown_is_noticed_at_once(client, worker_process):
    worker = worker_process(concurrency=1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and client.get("/healthz").status_code != 200:
        time.sleep(0.5)
    checks = client.get("/healthz").json()["checks"]
    assert checks["worker"]["ok"] and checks["worker"]["workers"] == 1, checks
    worker.stop()  # SIGTERM: a warm shutdown, the heartbeat step says goodbye
    assert client.get("/healthz").status_code == 503
