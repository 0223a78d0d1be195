"""Poll feed sources now, in this process (what beat does every minute through the worker)."""

from django.core.management.base import BaseCommand, CommandError

from mailer.models import Source
from mailer.polling import PollOutcome, ensure_site_feed, poll_source


class Command(BaseCommand):
    help = "Poll active feed sources now (all of them, or those given by id) and report what came in."

    def add_arguments(self, parser):
        parser.add_argument(
            "source_ids", nargs="*", type=int, help="Source ids (default: every active feed)."
        )
        parser.add_argument("--due", action="store_true", help="Only sources due for a poll.")

    def handle(self, *args, source_ids: list[int], due: bool, **options):
        ensure_site_feed()
        sources = Source.objects.filter(kind=Source.Kind.FEED).order_by("id")
        if source_ids:
            sources = sources.filter(pk__in=source_ids)
            missing = set(source_ids) - set(sources.values_list("pk", flat=True))
            if missing:
                raise CommandError(f"No feed source with id {', '.join(map(str, sorted(missing)))}.")
        else:
            sources = sources.filter(is_active=True)
        failed = 0
        for source in sources:
            result = poll_source(source.pk, force=not due)
            failed += result.outcome == PollOutcome.FAILED
            self.stdout.write(f"#{source.pk} {source.name}: {result.describe()}")
        if failed:
            raise CommandError(f"{failed} feed(s) failed; see the sources' last error.")
