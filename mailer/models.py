"""Articles and where they come from, digests (editions) and their schedules, and the delivery
ledger: one ``Delivery`` row per digest and subscriber, grouped into provider ``Batch`` calls."""

import hashlib
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from subscribers.models import Frequency, Subscriber, Topic


class Source(models.Model):
    """Where articles come from: the site's RSS/Atom feed, or a CMS pushing to the API."""

    class Kind(models.TextChoices):
        FEED = "feed", "RSS/Atom feed"
        API = "api", "CMS API"

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.FEED)
    url = models.URLField(max_length=1000, blank=True, help_text="Feed address (feeds only).")
    # API sources: only a SHA-256 of the token is stored; the prefix helps people recognise it.
    token_hash = models.CharField(max_length=64, blank=True, db_index=True)
    token_prefix = models.CharField(max_length=8, blank=True)
    is_active = models.BooleanField(default=True)
    etag = models.CharField(max_length=300, blank=True)
    last_modified = models.CharField(max_length=100, blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    failure_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def hash_token(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()


class Article(models.Model):
    """A published article, deduplicated by the feed's guid (or its URL when there is none)."""

    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.SET_NULL)
    guid = models.CharField(max_length=500, unique=True)
    url = models.URLField(max_length=1000, db_index=True)
    title = models.CharField(max_length=500)
    excerpt = models.TextField(blank=True, help_text="Sanitised HTML.")
    image_url = models.URLField(max_length=1000, blank=True)
    author = models.CharField(max_length=200, blank=True)
    categories = models.JSONField(default=list, blank=True)
    topics = models.ManyToManyField(Topic, blank=True, related_name="articles")
    published_at = models.DateTimeField(default=timezone.now, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    # When the source last changed the article (None: as first stored).
    updated_at = models.DateTimeField(null=True, blank=True)
    # SHA-256 of the cleaned fields the source last sent: a re-read updates the article only when
    # the source changed the entry, so an editor's edits survive re-reads of an unchanged entry.
    source_hash = models.CharField(max_length=64, blank=True, editable=False)
    # Set when the instant alert for this article has been queued (at most once).
    alerted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-published_at", "-id"]

    def __str__(self) -> str:
        return self.title


def publication_time_zone() -> str:
    return settings.PUBLICATION_TIME_ZONE


class Schedule(models.Model):
    """A recurring edition: daily at a time, or weekly on a day and time, in a time zone."""

    class Weekday(models.IntegerChoices):
        MONDAY = 0, "Monday"
        TUESDAY = 1, "Tuesday"
        WEDNESDAY = 2, "Wednesday"
        THURSDAY = 3, "Thursday"
        FRIDAY = 4, "Friday"
        SATURDAY = 5, "Saturday"
        SUNDAY = 6, "Sunday"

    name = models.CharField(max_length=100)
    frequency = models.CharField(
        max_length=16,
        choices=[(Frequency.DAILY, Frequency.DAILY.label), (Frequency.WEEKLY, Frequency.WEEKLY.label)],
        default=Frequency.DAILY,
    )
    weekday = models.IntegerField(choices=Weekday.choices, null=True, blank=True)
    send_time = models.TimeField(help_text="Local time in the schedule's time zone.")
    time_zone = models.CharField(
        max_length=64, default=publication_time_zone, help_text="An IANA zone, e.g. Europe/London."
    )
    subject_template = models.CharField(
        max_length=200,
        default="{publication}: {date}",
        help_text="Placeholders: {publication}, {date}, {first_title}.",
    )
    is_active = models.BooleanField(default=True)
    # The next moment (UTC) this schedule makes an edition; the beat tick advances it under a lock.
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_run_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class Digest(models.Model):
    """One edition of the newsletter."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"
        SENDING = "sending", "Sending"
        PAUSED = "paused", "Paused"
        SENT = "sent", "Sent"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped (nothing to send)"

    schedule = models.ForeignKey(Schedule, null=True, blank=True, on_delete=models.SET_NULL)
    frequency = models.CharField(max_length=16, choices=Frequency.choices, default=Frequency.DAILY)
    subject = models.CharField(max_length=200)
    preview_text = models.CharField(max_length=200, blank=True)
    intro = models.TextField(blank=True, help_text="An editor's note above the articles (plain text).")
    articles = models.ManyToManyField(Article, through="DigestArticle", blank=True, related_name="digests")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    scheduled_for = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Set when fan-out has written every Delivery row; until then total is a lower bound.
    total_recipients = models.PositiveIntegerField(default=0)
    fanout_done = models.BooleanField(default=False)
    # Keyset cursor of the fan-out (last subscriber id written), so a killed fan-out resumes.
    fanout_cursor = models.BigIntegerField(default=0)
    status_note = models.CharField(max_length=300, blank=True)

    class Meta:
        verbose_name = "edition"  # the editors' word; "digest" stays the code's
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "scheduled_for"], name="digest_due_idx")]

    def __str__(self) -> str:
        return self.subject

    def move(self, to: str, *, sources=None, **fields) -> bool:
        """Change the status to ``to`` if it is still one of ``sources`` (default: every status
        the life cycle lets reach ``to``), writing ``fields`` in the same guarded UPDATE.

        Returns False, changing nothing, when the edition is in none of them (another process
        moved it first). Raises ValueError for a move the life cycle does not allow.
        """
        allowed = {source for source, targets in DIGEST_TRANSITIONS.items() if to in targets}
        sources = set(sources) if sources is not None else allowed
        if not sources or not sources <= allowed:
            raise ValueError(f"an edition cannot move from {sorted(sources)} to {to!r}")
        changed = Digest.objects.filter(pk=self.pk, status__in=sources).update(status=to, **fields)
        if changed:
            self.status = to
            for name, value in fields.items():
                setattr(self, name, value)
        return bool(changed)

    def can_move(self, to: str) -> bool:
        return to in DIGEST_TRANSITIONS.get(self.status, ())


# An edition's life cycle: every status change goes through ``Digest.move`` and this table.
_S = Digest.Status
DIGEST_TRANSITIONS: dict[str, frozenset[str]] = {
    _S.DRAFT: frozenset({_S.SCHEDULED, _S.SENDING, _S.CANCELLED, _S.SKIPPED}),
    # scheduled -> scheduled: the editor changes the time.
    _S.SCHEDULED: frozenset({_S.DRAFT, _S.SCHEDULED, _S.SENDING, _S.CANCELLED, _S.SKIPPED}),
    _S.SENDING: frozenset({_S.PAUSED, _S.SENT, _S.FAILED}),
    _S.PAUSED: frozenset({_S.SENDING, _S.CANCELLED, _S.FAILED}),
    # "Retry failed" sends a finished edition again, to its failed recipients only.
    _S.SENT: frozenset({_S.SENDING}),
    _S.FAILED: frozenset({_S.SENDING}),
    # An edition that never started can be reopened as a draft and edited.
    _S.CANCELLED: frozenset({_S.DRAFT}),
    _S.SKIPPED: frozenset({_S.DRAFT}),
}
del _S


class DigestArticle(models.Model):
    digest = models.ForeignKey(Digest, on_delete=models.CASCADE)
    article = models.ForeignKey(Article, on_delete=models.CASCADE)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["digest", "article"], name="digest_article_unique")]

    def __str__(self) -> str:
        return f"{self.digest_id}#{self.position}: {self.article_id}"


class RenderedSegment(models.Model):
    """A digest compiled once for one segment (topic selection): HTML and text with merge
    placeholders for the per-recipient parts. Every batch of the segment reuses it."""

    digest = models.ForeignKey(Digest, on_delete=models.CASCADE, related_name="renderings")
    segment_key = models.CharField(max_length=255, blank=True)
    subject = models.CharField(max_length=200)
    html = models.TextField()
    text = models.TextField()
    article_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["digest", "segment_key"], name="rendered_segment_unique")
        ]

    def __str__(self) -> str:
        return f"{self.digest_id} [{self.segment_key or 'all topics'}]"


class Batch(models.Model):
    """One provider call: up to PROVIDER_BATCH_SIZE deliveries of one digest and segment."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUBMITTING = "submitting", "Submitting"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        # Found in "submitting" after a crash with a provider that ignores idempotency keys:
        # not resent blindly; its deliveries are settled from the provider's events.
        UNCERTAIN = "uncertain", "Uncertain (reconciling)"

    digest = models.ForeignKey(Digest, on_delete=models.CASCADE, related_name="batches")
    number = models.PositiveIntegerField()
    segment_key = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # Sent with the provider call; a provider that honours it accepts a repeated call only once.
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    attempts = models.PositiveIntegerField(default=0)
    recipient_count = models.PositiveIntegerField(default=0)
    # Fan-out fills a segment's open batch across pages; a sealed batch is full (or the
    # fan-out is over) and may be sent.
    sealed = models.BooleanField(default=False)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "batches"
        constraints = [models.UniqueConstraint(fields=["digest", "number"], name="batch_number_unique")]
        indexes = [models.Index(fields=["digest", "status"], name="batch_status_idx")]

    def __str__(self) -> str:
        return f"{self.digest_id}/{self.number}"


class Delivery(models.Model):
    """The ledger: one row per digest and subscriber, written before its batch is sent."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    digest = models.ForeignKey(Digest, on_delete=models.CASCADE, related_name="deliveries")
    # Kept (as NULL) when the subscriber erases their data, so the edition's figures still add up.
    subscriber = models.ForeignKey(Subscriber, null=True, blank=True, on_delete=models.SET_NULL)
    batch = models.ForeignKey(
        Batch, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    message_id = models.CharField(max_length=255, blank=True, db_index=True)
    error = models.CharField(max_length=500, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    complained_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["digest", "subscriber"], name="delivery_once_per_subscriber")
        ]
        indexes = [
            models.Index(fields=["digest", "status"], name="delivery_status_idx"),
            models.Index(fields=["batch", "status"], name="delivery_batch_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.digest_id} -> {self.subscriber_id} ({self.status})"
