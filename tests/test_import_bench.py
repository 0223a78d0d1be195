"""The import/export benchmark at a small size, as CI runs it: it must import and export every
row and print its figures. No timing assertions: speed is what the benchmark reports."""

import os
import re
import subprocess
import sys

from tests.fixtures.worker import ROOT


def test_the_import_export_benchmark_runs(tmp_path):
    env = dict(os.environ)
    # Its own throwaway SQLite database, never the test run's.
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.test", DATABASE_URL=f"sqlite:///{tmp_path / 'bench.sqlite3'}"
    )
    env["VAR_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "bench/import_export.py", "3000"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(
        r"^import: 3000 rows \([\d.]+ MB\) in [\d.]+ s = [\d,]+ rows/s, peak memory \+\d+ MB$",
        done.stdout,
        re.M,
    )
    assert re.search(
        r"^export: 3000 rows in [\d.]+ s = [\d,]+ rows/s, peak memory \+\d+ MB$", done.stdout, re.M
    )
