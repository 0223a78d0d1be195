"""manage.py resend_confirmations [--older-than 24] [--dry-run]

Queues the confirmation email again for pending sign-ups that were sent one more than
``--older-than`` hours ago (or never: a provider refusal, a lost task) and whose sign-up has not
expired yet. Each address gets at most one, through the subscribers' own service.
"""

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.utils import timezone

from subscribers import services
from subscribers.management.progress import ProgressBar
from subscribers.models import Subscriber

CHUNK = 500


def due_for_resend(*, older_than_hours: float, now=None):
    """Pending subscribers whose confirmation is due again (see the module docstring)."""
    now = now or timezone.now()
    return Subscriber.objects.filter(
        Q(confirmation_sent_at__isnull=True)
        | Q(confirmation_sent_at__lt=now - timedelta(hours=older_than_hours)),
        status=Subscriber.Status.PENDING,
        created_at__gte=now - timedelta(seconds=settings.CONFIRMATION_MAX_AGE),
    )


class Command(BaseCommand):
    help = "Queue the confirmation email again for pending sign-ups that have not confirmed."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=float,
            default=24.0,
            help="Hours since the last confirmation email (default 24).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Count them; queue nothing.")

    def handle(self, *args, older_than: float, dry_run: bool, **options):
        if older_than * 3600 < settings.CONFIRMATION_RESEND_WINDOW:
            raise CommandError(
                f"--older-than must be at least the resend window ({settings.CONFIRMATION_RESEND_WINDOW / 3600:g} h)."
            )
        queryset = due_for_resend(older_than_hours=older_than)
        total = queryset.count()
        if dry_run:
            self.stdout.write(f"Dry run: {total} pending sign-ups would get their confirmation email again.")
            return
        bar = ProgressBar(self.stderr, total, unit="subscribers")
        queued = seen = last = 0
        while True:
            chunk = list(queryset.filter(pk__gt=last).order_by("pk")[:CHUNK])
            if not chunk:
                break
            for subscriber in chunk:
                queued += services.resend_confirmation(subscriber)
            seen += len(chunk)
            last = chunk[-1].pk
            bar.update(seen)
        seconds = bar.finish()
        self.stdout.write(
            f"Queued {queued} confirmation emails for {seen} pending sign-ups ({seconds:.1f} s)."
        )
