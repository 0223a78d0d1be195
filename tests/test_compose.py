"""docker-compose.yml is validated against the Compose schema (no Docker engine runs here)."""

import os
import shutil
import subprocess

import pytest

from tests.fixtures.worker import ROOT

COMPOSE = shutil.which("docker-compose")


@pytest.fixture
def compose_project(tmp_path):
    if COMPOSE is None:
        if os.environ.get("REQUIRE_COMPOSE") == "1":
            pytest.fail("docker-compose is required (REQUIRE_COMPOSE=1) but not installed")
        pytest.skip("docker-compose is not installed; CI installs it and runs this test")
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    env = (ROOT / ".env.example").read_text()
    env = env.replace("SECRET_KEY=\n", "SECRET_KEY=" + "s" * 50 + "\n")
    env = env.replace("POSTGRES_PASSWORD=\n", "POSTGRES_PASSWORD=pw\n")
    env = env.replace("FLOWER_BASIC_AUTH=", "FLOWER_BASIC_AUTH=ops:pw")
    (tmp_path / ".env").write_text(env)
    return tmp_path


def compose(project, *args):
    return subprocess.run(
        [COMPOSE, "--project-directory", str(project), "-f", str(project / "docker-compose.yml"), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_file_is_valid_and_runs_the_whole_stack(compose_project):
    result = compose(compose_project, "config", "-q")
    assert result.returncode == 0, result.stderr
    services = set(compose(compose_project, "config", "--services").stdout.split())
    assert services == {"migrate", "web", "worker", "beat", "db", "redis", "flower"}


def _service_blocks(config: str) -> dict[str, str]:
    """The rendered configuration's text per service (docker-compose 1.x prints YAML, and no
    YAML parser is among the requirements: services are the 2-space-indented keys)."""
    blocks: dict[str, str] = {}
    section, name = None, None
    for line in config.splitlines():
        if line and not line.startswith(" "):
            section, name = line.rstrip(":"), None
        elif section == "services" and line.startswith("  ") and not line.startswith("   "):
            name = line.strip().rstrip(":")
            blocks[name] = ""
        elif name:
            blocks[name] += line + "\n"
    return blocks


def test_compose_refuses_to_start_without_a_database_password(compose_project):
    env = (compose_project / ".env").read_text().replace("POSTGRES_PASSWORD=pw\n", "")
    (compose_project / ".env").write_text(env)
    result = compose(compose_project, "config", "-q")
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


def test_compose_refuses_to_start_flower_without_a_password(compose_project):
    env = (compose_project / ".env").read_text().replace("FLOWER_BASIC_AUTH=ops:pw", "FLOWER_BASIC_AUTH=")
    (compose_project / ".env").write_text(env)
    result = compose(compose_project, "config", "-q")
    assert result.returncode != 0
    assert "FLOWER_BASIC_AUTH" in result.stderr


def test_every_long_running_service_has_a_health_check_or_depends_on_healthy_ones(compose_project):
    blocks = _service_blocks(compose(compose_project, "config").stdout)
    with_checks = {name for name, block in blocks.items() if "healthcheck:" in block}
    assert with_checks == {"web", "worker", "flower", "db", "redis"}
    for name in ("migrate", "web", "worker", "beat", "flower"):
        assert "condition: service_healthy" in blocks[name], name
    # The probes are the project's own: web asks /healthz, the worker reads its heartbeat.
    assert "config.probe" in blocks["web"] and "web" in blocks["web"]
    assert "config.probe" in blocks["worker"]
    # Flower is published on the host's loopback only, behind basic auth.
    assert "host_ip: 127.0.0.1" in blocks["flower"] or "127.0.0.1:5555:5555" in blocks["flower"]
    assert "FLOWER_BASIC_AUTH: ops:pw" in blocks["flower"]
    # Data survives restarts: PostgreSQL and Redis keep theirs in named volumes.
    assert "db-data" in blocks["db"] and "redis-data" in blocks["redis"]


def test_the_compose_health_probes_work_against_this_checkout(live_server, settings, monkeypatch):
    """The probes the compose file runs answer correctly here: the web probe gets 200 from a
    real server's /healthz, the worker probe fails without a heartbeat and passes with one."""
    import socket

    from config import heartbeat, probe

    port = live_server.url.rsplit(":", 1)[1]
    monkeypatch.setenv("PORT", port)
    monkeypatch.setenv("ALLOWED_HOSTS", "localhost")
    assert probe.web() is None
    monkeypatch.setenv("PORT", "1")
    assert "did not answer" in probe.web()

    monkeypatch.setenv("REDIS_URL", settings.REDIS_URL)
    monkeypatch.delenv("CELERY_HOSTNAME", raising=False)
    assert "no heartbeat" in probe.worker()
    heartbeat.beat(f"celery@{socket.gethostname()}")
    assert probe.worker() is None
    assert probe.main(["nonsense"]) == 2
