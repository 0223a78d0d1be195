"""manage.py prune_pending [--days 7] [--dry-run]

Deletes sign-ups that were never confirmed and whose last confirmation link has expired: we keep
no address for longer than the reader's unanswered request needs (data minimisation). A
reader who changes their mind later simply signs up again.
"""

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db.models.functions import Coalesce
from django.utils import timezone

from subscribers.management.progress import ProgressBar
from subscribers.models import Subscriber

CHUNK = 1000


def expired_pending(*, days: float, now=None):
    """Pending subscribers whose last confirmation email (or sign-up, if none went out) is
    older than ``days``."""
    cutoff = (now or timezone.now()) - timedelta(days=days)
    return (
        Subscriber.objects.filter(status=Subscriber.Status.PENDING)
        .alias(last_asked=Coalesce("confirmation_sent_at", "created_at"))
        .filter(last_asked__lt=cutoff)
    )


class Command(BaseCommand):
    help = "Delete pending sign-ups whose confirmation link has expired."

    def add_arguments(self, parser):
        parser.add_argument(
            "--days",
            type=float,
            default=None,
            help="Age in days (default: the confirmation link's life, CONFIRMATION_MAX_AGE).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Count them; delete nothing.")

    def handle(self, *args, days: float | None, dry_run: bool, **options):
        link_days = settings.CONFIRMATION_MAX_AGE / 86400
        days = link_days if days is None else days
        if days < link_days:
            raise CommandError(
                f"--days cannot be less than the confirmation link's life ({link_days:g} days)."
            )
        queryset = expired_pending(days=days)
        total = queryset.count()
        if dry_run:
            self.stdout.write(f"Dry run: {total} pending sign-ups older than {days:g} days would be deleted.")
            return
        bar = ProgressBar(self.stderr, total, unit="sign-ups")
        deleted = 0
        while True:
            ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:CHUNK])
            if not ids:
                break
            # Guarded by status again: a reader confirming right now is not deleted.
            deleted += (
                Subscriber.objects.filter(pk__in=ids, status=Subscriber.Status.PENDING)
                .delete()[1]
                .get(Subscriber._meta.label, 0)
            )
            bar.update(deleted)
        seconds = bar.finish()
        self.stdout.write(f"Deleted {deleted} pending sign-ups older than {days:g} days ({seconds:.1f} s).")
