"""The project's Celery worker (``worker.app``, unchanged) plus cost counters for the benchmarks:
database queries, MJML compilations and peak memory of every process that runs tasks, written
to Redis after each task so the benchmark can read them while and after it runs.

    python -m bench.worker --pool threads --concurrency 2   # any `celery worker` options

Counting costs one Redis write per task (a task sends a batch of up to 1,000 recipients).
"""

import os
import resource
import sys
import threading

from bench.common import setup_django

PREFIX = "bench:cost"
READY = f"{PREFIX}:ready"


class Costs:
    """What this process has cost so far; the numbers behind one Redis hash."""

    def __init__(self):
        self.lock = threading.Lock()
        self.queries = 0
        self.tasks = 0

    def count_query(self, execute, sql, params, many, context):
        with self.lock:
            self.queries += 1
        return execute(sql, params, many, context)


costs = Costs()


def _client():
    import redis
    from django.conf import settings

    return redis.Redis.from_url(settings.REDIS_URL)


def _wrap_connections(**kwargs) -> None:
    # Each thread of the pool has its own connections; wrap them before the task's first query.
    from django.db import connections

    for conn in connections.all():
        if costs.count_query not in conn.execute_wrappers:
            conn.execute_wrappers.append(costs.count_query)


def _report(**kwargs) -> None:
    from mailer.rendering import compilations

    with costs.lock:
        costs.tasks += 1
        queries, tasks = costs.queries, costs.tasks
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    _client().hset(
        f"{PREFIX}:{os.getpid()}",
        mapping={"queries": queries, "compilations": compilations(), "peak_kb": peak_kb, "tasks": tasks},
    )


def _ready(**kwargs) -> None:
    _client().sadd(READY, os.getpid())


def main() -> None:
    setup_django()
    from celery.signals import task_postrun, task_prerun, worker_ready

    from worker import app

    task_prerun.connect(_wrap_connections, weak=False)
    task_postrun.connect(_report, weak=False)
    worker_ready.connect(_ready, weak=False)
    app.worker_main(
        ["worker", "--loglevel", "WARNING", "--without-gossip", "--without-mingle", *sys.argv[1:]]
    )


if __name__ == "__main__":
    main()
