"""Subscribers, the topics they follow, and the record of what they agreed to."""

import uuid
from datetime import timedelta

from django.db import connections, models, router
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Frequency(models.TextChoices):
    INSTANT = "instant", _("As soon as an article is published")
    DAILY = "daily", _("Daily digest")
    WEEKLY = "weekly", _("Weekly digest")


class Topic(models.Model):
    """One of the site's sections a reader can follow (Politics, Sport, ...)."""

    slug = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    # Feed categories (WordPress categories/tags) that put an article in this topic, one per line.
    categories = models.TextField(blank=True, help_text="Feed categories for this topic, one per line.")
    position = models.PositiveIntegerField(default=0)
    is_public = models.BooleanField(default=True, help_text="Offered on the sign-up form.")

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name

    def category_names(self) -> set[str]:
        return {line.strip().lower() for line in self.categories.splitlines() if line.strip()}


class Subscriber(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending confirmation"
        ACTIVE = "active", "Active"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained"

    # Public identifier used in signed links; the numeric id never leaves the service.
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    email = models.EmailField(max_length=254, unique=True)
    name = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    frequency = models.CharField(max_length=16, choices=Frequency.choices, default=Frequency.DAILY)
    topics = models.ManyToManyField(Topic, blank=True, related_name="subscribers")
    # Sorted topic ids joined by commas ("" = every topic): the rendering segment, kept in step
    # with ``topics`` by ``set_topics`` so a send can group recipients without a join.
    segment_key = models.CharField(max_length=255, blank=True, default="")
    language = models.CharField(max_length=8, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    confirmation_sent_at = models.DateTimeField(null=True, blank=True)
    soft_bounces = models.PositiveIntegerField(default=0)
    suppressed_reason = models.CharField(max_length=300, blank=True)
    # Why the last confirmation or welcome email could not be sent (a permanent provider refusal).
    last_email_error = models.CharField(max_length=300, blank=True)

    class Meta:
        indexes = [
            # The send query: active subscribers of one frequency, walked by id (keyset).
            models.Index(fields=["status", "frequency", "id"], name="subscriber_send_idx"),
            models.Index(fields=["created_at"], name="subscriber_created_idx"),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @staticmethod
    def segment_key_of(topics) -> str:
        """The ``segment_key`` of a reader with these topics: their ids, sorted."""
        return ",".join(str(pk) for pk in sorted(t.pk for t in topics))

    def set_topics(self, topics) -> None:
        """Replace the topics and keep ``segment_key`` in step (saves both)."""
        topics = list(topics)
        self.topics.set(topics)
        self.segment_key = self.segment_key_of(topics)
        Subscriber.objects.filter(pk=self.pk).update(segment_key=self.segment_key)

    def confirm(self, *, at=None) -> bool:
        """pending -> active. Returns False if the subscriber was not pending (nothing changes)."""
        at = at or timezone.now()
        changed = Subscriber.objects.filter(pk=self.pk, status=self.Status.PENDING).update(
            status=self.Status.ACTIVE, confirmed_at=at
        )
        if changed:
            self.status, self.confirmed_at = self.Status.ACTIVE, at
        return bool(changed)

    def unsubscribe(self, *, at=None) -> bool:
        """pending/active -> unsubscribed. Returns False when already out (nothing changes)."""
        at = at or timezone.now()
        changed = Subscriber.objects.filter(
            pk=self.pk, status__in=[self.Status.PENDING, self.Status.ACTIVE]
        ).update(status=self.Status.UNSUBSCRIBED, unsubscribed_at=at)
        if changed:
            self.status, self.unsubscribed_at = self.Status.UNSUBSCRIBED, at
        return bool(changed)

    def reopen(self, *, at=None) -> bool:
        """unsubscribed -> pending: a former subscriber signed up again and must confirm again.
        Returns False for any other status (nothing changes)."""
        changed = Subscriber.objects.filter(pk=self.pk, status=self.Status.UNSUBSCRIBED).update(
            status=self.Status.PENDING, confirmed_at=None, unsubscribed_at=None
        )
        if changed:
            self.status, self.confirmed_at, self.unsubscribed_at = self.Status.PENDING, None, None
        return bool(changed)

    def claim_confirmation(self, *, window: int, at=None) -> bool:
        """Take the right to send one confirmation email now: True for at most one caller per
        ``window`` seconds, and only while pending (the guard is one conditional UPDATE, so two
        workers or two sign-ups cannot both win)."""
        at = at or timezone.now()
        changed = (
            Subscriber.objects.filter(pk=self.pk, status=self.Status.PENDING)
            .filter(
                models.Q(confirmation_sent_at__isnull=True)
                | models.Q(confirmation_sent_at__lte=at - timedelta(seconds=window))
            )
            .update(confirmation_sent_at=at)
        )
        if changed:
            self.confirmation_sent_at = at
        return bool(changed)

    @classmethod
    def claim_confirmations(cls, ids: list[int], *, window: int, at=None) -> list[int]:
        """``claim_confirmation`` for many subscribers in one guarded UPDATE: the ids (of
        ``ids``) that were pending and not sent a confirmation within ``window`` seconds, now
        stamped ``at``. A subscriber is claimed by at most one caller per window, as with the
        single claim: the guard and the stamp are one statement, and RETURNING says which rows
        it changed (a later SELECT could not tell our stamp from a concurrent one)."""
        at = at or timezone.now()
        ids = [int(pk) for pk in ids]
        if not ids:
            return []
        # UPDATE ... RETURNING: PostgreSQL and SQLite (3.35+), the two databases we run on.
        connection = connections[router.db_for_write(cls)]
        ops = connection.ops
        table = ops.quote_name(cls._meta.db_table)
        pk = ops.quote_name(cls._meta.pk.column)
        status = ops.quote_name(cls._meta.get_field("status").column)
        sent = ops.quote_name(cls._meta.get_field("confirmation_sent_at").column)
        placeholders = ", ".join(["%s"] * len(ids))
        # Only quoted column names and placeholders are interpolated; every value is a parameter.
        sql = (
            f"UPDATE {table} SET {sent} = %s WHERE {pk} IN ({placeholders}) AND {status} = %s "  # noqa: S608
            f"AND ({sent} IS NULL OR {sent} <= %s) RETURNING {pk}"
        )
        params = [
            ops.adapt_datetimefield_value(at),
            *ids,
            cls.Status.PENDING.value,
            ops.adapt_datetimefield_value(at - timedelta(seconds=window)),
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return sorted(row[0] for row in cursor.fetchall())

    def suppress(self, *, status: str, reason: str) -> bool:
        """Mark bounced or complained (provider feedback). Returns False if already suppressed."""
        assert status in (self.Status.BOUNCED, self.Status.COMPLAINED)
        changed = (
            Subscriber.objects.filter(pk=self.pk)
            .exclude(status__in=[self.Status.BOUNCED, self.Status.COMPLAINED])
            .update(status=status, suppressed_reason=reason[:300])
        )
        if changed:
            self.status, self.suppressed_reason = status, reason[:300]
        return bool(changed)


class ConsentRecord(models.Model):
    """What a subscriber agreed to (or withdrew), when, and from where. Append-only."""

    class Action(models.TextChoices):
        SUBSCRIBE = "subscribe", "Signed up"
        CONFIRM = "confirm", "Confirmed"
        CHANGE = "change", "Changed preferences"
        UNSUBSCRIBE = "unsubscribe", "Unsubscribed"

    class Source(models.TextChoices):
        FORM = "form", "Sign-up form"
        API = "api", "JSON API"
        IMPORT = "import", "Import"
        ADMIN = "admin", "Admin"
        EMAIL = "email", "Email link"
        PROVIDER = "provider", "Provider feedback"

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="consents")
    action = models.CharField(max_length=16, choices=Action.choices)
    source = models.CharField(max_length=16, choices=Source.choices)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    wording = models.TextField(blank=True, help_text="The text the reader agreed to.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return (
            f"{self.get_action_display()} via {self.get_source_display()} at {self.created_at:%Y-%m-%d %H:%M}"
        )
