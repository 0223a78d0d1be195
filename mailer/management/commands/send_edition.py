"""Send an edition now, or schedule it, from the command line.

    python manage.py send_edition 42                      # now
    python manage.py send_edition 42 --at "2026-11-26 07:00"   # the publisher's wall clock
    python manage.py send_edition --new                   # a new edition of what is new, now

The beat tick (or, for "now", this command itself) claims it and delivery sends it.
"""

from datetime import datetime

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mailer import digests, schedules
from mailer.models import Digest
from subscribers.models import Frequency


class Command(BaseCommand):
    help = "Send an edition now or schedule it (--at, in the publication's time zone)."

    def add_arguments(self, parser):
        parser.add_argument("digest_id", type=int, nargs="?")
        parser.add_argument("--at", help="Local date and time, e.g. '2026-11-26 07:00'.")
        parser.add_argument(
            "--new", action="store_true", help="Make a new edition of the new articles first."
        )
        parser.add_argument(
            "--frequency", default=Frequency.DAILY, choices=[Frequency.DAILY, Frequency.WEEKLY]
        )

    def handle(self, *args, digest_id: int | None, at: str | None, new: bool, frequency: str, **options):
        if new == (digest_id is not None):
            raise CommandError("Give an edition id, or --new.")
        if new:
            digest = digests.create_edition(frequency=frequency)
            if not digest.articles.exists():
                # An empty draft left behind by every "nothing new" run would pile up in the admin.
                digest.delete()
                raise CommandError("Nothing was published since the previous edition: no edition made.")
            self.stdout.write(
                f"made edition {digest.pk}: {digest.subject!r}, {digest.articles.count()} articles"
            )
        else:
            digest = Digest.objects.filter(pk=digest_id).first()
            if digest is None:
                raise CommandError(f"There is no edition {digest_id}.")
        try:
            if at:
                when = self._local(at)
                digests.schedule_edition(digest, when=when)
                self.stdout.write(
                    f"edition {digest.pk} scheduled for {at} ({settings.PUBLICATION_TIME_ZONE})"
                )
            else:
                digests.send_now(digest)
                self.stdout.write(f"edition {digest.pk} is {digest.get_status_display().lower()}")
        except digests.EditionError as exc:
            raise CommandError(str(exc)) from exc

    def _local(self, value: str) -> datetime:
        for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"):
            try:
                naive = datetime.strptime(value.strip(), fmt)
            except ValueError:
                continue
            zone = schedules.zone(settings.PUBLICATION_TIME_ZONE)
            if not schedules.local_time_exists(naive.date(), naive.time(), zone):
                raise CommandError(
                    f"{value} does not exist in {zone.key} (the clocks go forward through it)."
                )
            # A time that happens twice (clocks go back) means the first, as for schedules.
            return schedules.local_moment(naive.date(), naive.time(), zone)
        raise CommandError("--at: give a date and time like '2026-11-26 07:00'.")
