"""What every benchmark shares: Django set-up, a scratch-database guard, the local provider and
Celery workers as real processes, and the way figures are printed.

Each benchmark prints one ``name: value`` line per figure and ends with one ``summary:`` line,
so a person reads it and a test (or a script) can parse it.
"""

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django() -> None:
    """Django with the settings of the environment (the plain base settings by default: DEBUG
    off, so no query log grows in memory)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    import django

    django.setup()


class NotAScratchDatabase(SystemExit):
    pass


def require_scratch_database() -> str:
    """The benchmarks empty the tables they fill; refuse any database whose name does not say it
    is a scratch one ("bench" or "test" in the name). Returns a description of the database."""
    from django.db import connection

    s = connection.settings_dict
    name = str(s["NAME"])
    vendor = connection.vendor
    if "bench" not in Path(name).name.lower() and "test" not in Path(name).name.lower():
        raise NotAScratchDatabase(
            f"refusing to use database {name!r}: the benchmark empties subscriber and mailer tables, "
            "so its name must contain 'bench' or 'test' (bin/bench creates newsletter_bench)"
        )
    if vendor == "postgresql":
        return f"PostgreSQL {s.get('HOST') or 'localhost'}/{name}"
    return f"{vendor} {name}"


def require_own_redis() -> None:
    """The benchmarks queue tasks and purge the queue of their Redis: refuse one that workers
    other than the benchmark's own are consuming from (their heartbeats say so), since they
    would run the benchmark's tasks against their own database."""
    from config.heartbeat import live_workers

    others = sorted(name for name in live_workers() if not name.startswith("bench"))
    if others:
        raise SystemExit(
            f"refusing to use this Redis: workers {', '.join(others[:3])} consume from it. Give the "
            "benchmark a Redis (database) of its own, e.g. leave REDIS_URL unset for bin/bench"
        )


def service_env(provider) -> dict[str, str]:
    """The environment of the processes a benchmark starts (workers, web): this benchmark's
    database and Redis, and the local provider ``provider``."""
    from django.conf import settings

    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(),
        REDIS_URL=settings.REDIS_URL,
        LOCAL_PROVIDER_URL=provider.url,
        MAILGUN_API_URL=provider.api_url,
        LOG_LEVEL="WARNING",
    )
    return env


def database_url() -> str:
    """The Django database as a DATABASE_URL for the worker processes."""
    from django.db import connection

    from config.settings.env import database_url as as_url

    return as_url(connection.settings_dict)


def figure(name: str, value, unit: str = "") -> None:
    text = f"{value:,.1f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else value
    print(f"{name}: {text}{(' ' + unit) if unit else ''}", flush=True)


def heading(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _as_background() -> None:
    """In a started child, before it runs: a session of its own at niceness 10, as the workers
    run (worker/celery.py), so it takes the CPU the service leaves."""
    os.nice(10)
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text("10")


@contextmanager
def local_provider():
    """The project's local provider (Mailgun's API over HTTP) on a free port, with a throwaway
    store; yields a LocalProviderClient. It stands in for the provider's servers, which are not
    on the publisher's machine, so it runs in the background (``_as_background``): its CPU is
    what the web and the workers leave."""
    from localprovider.client import LocalProviderClient

    with tempfile.TemporaryDirectory(prefix="bench-provider-") as tmp:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "localprovider",
                "serve",
                "--port",
                "0",
                "--db",
                str(Path(tmp) / "p.sqlite3"),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
            preexec_fn=_as_background,
        )
        try:
            line = proc.stdout.readline().strip()
            if not line.startswith("localprovider listening on "):
                raise RuntimeError(f"the local provider did not start: {line!r}")
            client = LocalProviderClient(line.removeprefix("localprovider listening on "), timeout=300)
            client.pid = proc.pid
            yield client
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()


class Workers:
    """``count`` real ``celery worker`` processes (bench.worker: the project's worker plus cost
    counters), on the benchmark's database and Redis."""

    def __init__(self, count: int, *, env: dict[str, str], pool: str, concurrency: int):
        self.count, self.env, self.pool, self.concurrency = count, env, pool, concurrency
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> "Workers":
        for n in range(self.count):
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "bench.worker",
                        "--hostname",
                        f"bench{n}-{os.getpid()}@%h",
                        "--pool",
                        self.pool,
                        "--concurrency",
                        str(self.concurrency),
                    ],
                    cwd=ROOT,
                    env=self.env,
                    # The banner goes nowhere; warnings and errors (stderr) stay visible.
                    stdout=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        return self

    def wait_ready(self, counters, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(counters.ready_pids()) < self.count:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"a worker exited with {proc.returncode} while starting")
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not start in time")
            time.sleep(0.1)

    def __exit__(self, *exc) -> None:
        import signal

        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
