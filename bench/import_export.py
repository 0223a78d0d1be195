"""Import and export figures: a CSV of N subscribers imported in one transaction, then exported.

    DJANGO_SETTINGS_MODULE=config.settings.test python bench/import_export.py [rows]

Runs on a throwaway test database (the configured database's test twin) and prints the time,
the rows per second, and how much the process's peak memory grew during each.
"""

import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

import django

django.setup()

from django.db import connection  # noqa: E402


def _peak_mb() -> float:
    # Peak resident memory of this process so far (Linux reports KiB).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(rows: int) -> None:
    from subscribers.exports import write_csv
    from subscribers.imports import ConsentBasis, import_subscribers
    from subscribers.models import Subscriber, Topic

    Topic.objects.create(slug="politics", name="Politics")
    Topic.objects.create(slug="sport", name="Sport")
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-import-{os.getpid()}.csv"  # noqa: S108
    with path.open("w") as out:
        out.write("email,name,topics,frequency\n")
        for i in range(rows):
            out.write(f"reader{i}@example.org,Reader {i},{'politics;sport' if i % 3 else ''},daily\n")
    size_mb = path.stat().st_size / 1e6

    before = _peak_mb()
    started = time.perf_counter()
    with path.open("rb") as source:
        report = import_subscribers(
            source, basis=ConsentBasis.CONFIRMED_ELSEWHERE, wording="Benchmark readers who agreed elsewhere."
        )
    took = time.perf_counter() - started
    assert report.committed, report.summary()
    print(
        f"import: {rows} rows ({size_mb:.1f} MB) in {took:.2f} s = {rows / took:,.0f} rows/s, "
        f"peak memory +{_peak_mb() - before:.0f} MB"
    )

    before = _peak_mb()
    started = time.perf_counter()
    with path.open("w", newline="") as sink:
        count = write_csv(Subscriber.objects.all(), sink)
    took = time.perf_counter() - started
    path.unlink()
    print(
        f"export: {count} rows in {took:.2f} s = {count / took:,.0f} rows/s, "
        f"peak memory +{_peak_mb() - before:.0f} MB"
    )


if __name__ == "__main__":
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    old_name = connection.settings_dict["NAME"]
    test_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    print(f"database: {connection.vendor} ({test_name})")
    try:
        main(rows)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
