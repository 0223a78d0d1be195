"""manage.py import_subscribers readers.csv --basis send_confirmation [--dry-run]

The admin's import for files of any size: a progress bar, every row error with its line, and a
summary line. All or nothing, like the admin's.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from subscribers.imports import ConsentBasis, ImportRefused, import_subscribers
from subscribers.management.progress import ProgressBar


class Command(BaseCommand):
    help = "Import subscribers from a CSV file (header: email[,name,topics,frequency]) with a consent basis."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="The CSV file (UTF-8).")
        parser.add_argument(
            "--basis",
            required=True,
            choices=[ConsentBasis.CONFIRMED_ELSEWHERE, ConsentBasis.SEND_CONFIRMATION],
            help="confirmed_elsewhere: they agreed elsewhere (say where with --wording); "
            "send_confirmation: each new address gets a confirmation email.",
        )
        parser.add_argument(
            "--wording", default="", help="Where and how these readers agreed; kept as consent."
        )
        parser.add_argument("--dry-run", action="store_true", help="Check and report; write nothing.")

    def handle(self, *args, path: Path, basis: str, wording: str, dry_run: bool, **options):
        try:
            with path.open("rb") as source:
                total = max(
                    sum(block.count(b"\n") for block in iter(lambda: source.read(1 << 20), b"")) - 1, 0
                )
                source.seek(0)
                bar = ProgressBar(self.stderr, total or None)
                report = import_subscribers(
                    source, basis=basis, wording=wording, dry_run=dry_run, progress=bar.update
                )
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror or exc}") from exc
        except ImportRefused as exc:
            raise CommandError(str(exc)) from exc
        seconds = bar.finish()
        for issue in report.errors:
            self.stderr.write(f"line {issue.line}: {issue.email}: {issue.message}")
        if report.error_count > len(report.errors):
            self.stderr.write(f"... {report.error_count - len(report.errors)} more errors not listed")
        if options["verbosity"] > 1:
            for issue in report.notices:
                self.stderr.write(f"line {issue.line}: {issue.email}: {issue.message}")
        elif report.notices:
            self.stderr.write(f"{len(report.notices)} rows skipped with a note (-v 2 lists them)")
        if report.ignored_columns:
            self.stderr.write(f"ignored columns: {', '.join(report.ignored_columns)}")
        if not report.ok:
            raise CommandError(report.summary())
        self.stdout.write(f"{report.summary()} ({seconds:.1f} s)")
