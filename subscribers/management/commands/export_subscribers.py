"""manage.py export_subscribers [--status active] [--topic sport] [-o subscribers.csv]

The CSV the admin's export gives, for any number of subscribers, with a progress bar.
"""

import csv
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from subscribers import exports
from subscribers.management.progress import ProgressBar
from subscribers.models import Frequency, Subscriber, Topic


class Command(BaseCommand):
    help = "Export subscribers as CSV (the columns the import reads come first)."

    def add_arguments(self, parser):
        parser.add_argument("-o", "--output", type=Path, help="File to write (default: standard output).")
        parser.add_argument("--status", action="append", choices=Subscriber.Status.values, help="Repeatable.")
        parser.add_argument("--frequency", choices=Frequency.values)
        parser.add_argument("--topic", action="append", help="Topic slug; repeatable (any of them).")

    def handle(self, *args, output: Path | None, status, frequency, topic, **options):
        queryset = Subscriber.objects.all()
        if status:
            queryset = queryset.filter(status__in=status)
        if frequency:
            queryset = queryset.filter(frequency=frequency)
        if topic:
            found = list(Topic.objects.filter(slug__in=topic).values_list("slug", "pk"))
            unknown = sorted(set(topic) - {slug for slug, _ in found})
            if unknown:
                raise CommandError(f"Unknown topic: {', '.join(unknown)}")
            queryset = queryset.filter(topics__in=[pk for _, pk in found]).distinct()
        total = queryset.count()
        bar = ProgressBar(self.stderr, total, unit="subscribers")
        try:
            out = output.open("w", newline="", encoding="utf-8") if output else sys.stdout
        except OSError as exc:
            raise CommandError(f"Cannot write {output}: {exc.strerror or exc}") from exc
        try:
            writer = csv.writer(out)
            count = -1
            for count, row in enumerate(exports.rows(queryset), start=-1):
                writer.writerow(row)
                if count > 0 and count % 1000 == 0:
                    bar.update(count)
            count += 1
            bar.update(count)
        finally:
            if output:
                out.close()
        seconds = bar.finish()
        self.stderr.write(f"Exported {count} subscribers to {output or 'standard output'} ({seconds:.1f} s).")
