"""Editions: making them (by hand, from a schedule, as an instant alert), changing their
articles, scheduling, sending now, cancelling, and the beat tick that claims due editions.

Every status change goes through ``Digest.move`` (a guarded UPDATE), so two processes can
never both make the same move. Due editions are claimed under a row lock taken with
``select_for_update(skip_locked=True)`` on PostgreSQL; on SQLite every transaction is
IMMEDIATE (it takes the database's write lock when it begins), so claimers run one after the
other and the guarded UPDATE lets only the first one through. Nothing waits in an ETA task:
the database is the schedule and a restart loses nothing.
"""

import logging
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.dispatch import receiver
from django.utils import timezone
from kombu.exceptions import OperationalError

from mailer import schedules
from mailer.models import Article, Digest, DigestArticle, Schedule
from mailer.rendering import digest_articles
from mailer.signals import articles_published
from subscribers.models import Frequency, Subscriber

log = logging.getLogger(__name__)

Status = Digest.Status
START_EDITION = "mailer.tasks.delivery.start_edition"
# The first key of this module's PostgreSQL advisory locks ("DGST").
ADVISORY_LOCK_SPACE = 0x44475354

# An edition holds at most this many articles (the newest, when more were published).
MAX_ARTICLES = 30
# Articles older than this at announcement get no instant alert (a feed's first read, say).
ALERT_MAX_AGE = timedelta(hours=24)
# An edition claimed this long ago whose fan-out never began lost its start message.
STALLED_AFTER = timedelta(minutes=15)
# Editions whose articles count as "already sent": they went out or are about to.
TAKEN_STATUSES = (Status.SCHEDULED, Status.SENDING, Status.PAUSED, Status.SENT, Status.FAILED)
EDITABLE_STATUSES = (Status.DRAFT, Status.SCHEDULED)


class EditionError(Exception):
    """An editor's request that cannot be done; the message says why, in the editor's words."""


class EditionEmpty(EditionError):
    pass


class EditionNotEditable(EditionError):
    pass


class EditionStateChanged(EditionError):
    """The edition is not (or no longer) in a status that allows this."""


# --- Making editions ----------------------------------------------------------------------------


def default_articles(
    *, frequency: str, until: datetime, exclude_digest_id: int | None = None
) -> list[Article]:
    """The articles an edition of ``frequency`` gets unless the editor chooses: every article
    published since the previous edition of that frequency (or the last day/week when there is
    none) up to ``until``, that no edition of that frequency has taken, newest first."""
    previous = (
        Digest.objects.filter(frequency=frequency, status__in=TAKEN_STATUSES, created_at__lte=until)
        .exclude(pk=exclude_digest_id)
        .order_by("-created_at", "-id")
        .first()
    )
    start = previous.created_at if previous else schedules.window_start(frequency, until)
    taken = DigestArticle.objects.filter(
        digest__frequency=frequency, digest__status__in=TAKEN_STATUSES
    ).values("article_id")
    return list(
        Article.objects.filter(published_at__gt=start, published_at__lte=until)
        .exclude(pk__in=taken)
        .order_by("-published_at", "-id")[:MAX_ARTICLES]
    )


def lock_frequency(frequency: str) -> None:
    """Hold, until the current transaction ends, the right to collect articles for editions of
    ``frequency``: two schedules of one frequency running at once must not both take the same
    new articles. PostgreSQL: a transaction-level advisory lock. SQLite: every transaction
    already holds the database's write lock (IMMEDIATE), so there is nothing more to take."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)",
                [ADVISORY_LOCK_SPACE, zlib.crc32(frequency.encode()) & 0x7FFFFFFF],
            )


def _attach(digest: Digest, articles: Sequence[Article]) -> None:
    DigestArticle.objects.bulk_create(
        [DigestArticle(digest=digest, article=a, position=i) for i, a in enumerate(articles)]
    )


def create_edition(
    *,
    frequency: str = Frequency.DAILY,
    subject: str = "",
    preview_text: str = "",
    intro: str = "",
    articles: Sequence[Article] | None = None,
    schedule: Schedule | None = None,
    scheduled_for: datetime | None = None,
    now: datetime | None = None,
) -> Digest:
    """Make an edition with ``articles`` (default: ``default_articles``), in order.

    Without ``scheduled_for`` it is a draft. With it, it is scheduled, unless it has no article:
    then it is stored as skipped with a note saying so (nothing is sent, the editor sees why).
    """
    now = now or timezone.now()
    if articles is None:
        articles = default_articles(frequency=frequency, until=now)
    articles = list(articles)
    if not subject:
        template = schedule or Schedule(subject_template="{publication}: {date}", time_zone="")
        first = articles[0].title if articles else ""
        subject = schedules.edition_subject(template, when=scheduled_for or now, first_title=first)
    status, note = Status.DRAFT, ""
    if scheduled_for is not None:
        status = Status.SCHEDULED if articles else Status.SKIPPED
        if not articles:
            note = "Nothing new was published since the previous edition, so none was sent."
    with transaction.atomic():
        digest = Digest.objects.create(
            frequency=frequency,
            subject=subject[:200],
            preview_text=preview_text[:200],
            intro=intro,
            schedule=schedule,
            status=status,
            scheduled_for=scheduled_for,
            status_note=note,
            created_at=now,
            finished_at=now if status == Status.SKIPPED else None,
        )
        _attach(digest, articles)
    return digest


def set_articles(digest: Digest, article_ids: Sequence[int]) -> None:
    """Replace the edition's articles with ``article_ids``, in that order (duplicates dropped).
    Only drafts and scheduled editions change; raises ``EditionNotEditable`` otherwise and
    ``EditionError`` for ids that are not articles."""
    ids = list(dict.fromkeys(int(pk) for pk in article_ids))
    found = set(Article.objects.filter(pk__in=ids).values_list("pk", flat=True))
    if len(found) != len(ids):
        raise EditionError("Some of the chosen articles do not exist (any more).")
    with transaction.atomic():
        locked = Digest.objects.select_for_update().get(pk=digest.pk)
        if locked.status not in EDITABLE_STATUSES:
            raise EditionNotEditable(f"A {locked.get_status_display().lower()} edition cannot be changed.")
        DigestArticle.objects.filter(digest=locked).delete()
        DigestArticle.objects.bulk_create(
            [DigestArticle(digest=locked, article_id=pk, position=i) for i, pk in enumerate(ids)]
        )
        # A stored rendering would no longer match the articles.
        locked.renderings.all().delete()


def add_new_articles(digest: Digest, *, now: datetime | None = None) -> int:
    """Append to a draft the articles published since it was made that an edition would take
    by default and it does not have yet (newest first, after the editor's choice). Returns how
    many were added; calling it again adds nothing new. Raises ``EditionNotEditable``."""
    now = now or timezone.now()
    current = list(
        DigestArticle.objects.filter(digest=digest)
        .order_by("position", "id")
        .values_list("article_id", flat=True)
    )
    fresh = default_articles(frequency=digest.frequency, until=now, exclude_digest_id=digest.pk)
    added = [a.pk for a in fresh if a.pk not in set(current)][: max(0, MAX_ARTICLES - len(current))]
    if added:
        set_articles(digest, current + added)
    elif digest.status not in EDITABLE_STATUSES:
        raise EditionNotEditable(f"A {digest.get_status_display().lower()} edition cannot be changed.")
    return len(added)


# --- An editor's moves ------------------------------------------------------------------------


def schedule_edition(digest: Digest, *, when: datetime, now: datetime | None = None) -> None:
    """Draft (or scheduled) -> scheduled for ``when`` (aware). The beat tick sends it then.
    Raises ``EditionEmpty``, ``EditionStateChanged``, or ``EditionError`` for a time in the past."""
    now = now or timezone.now()
    if timezone.is_naive(when):
        raise EditionError("The time needs a time zone.")
    if when < now - timedelta(minutes=1):
        raise EditionError("That time has passed; choose a later one, or send it now.")
    if not DigestArticle.objects.filter(digest=digest).exists():
        raise EditionEmpty("The edition has no articles.")
    if not digest.move(Status.SCHEDULED, sources=EDITABLE_STATUSES, scheduled_for=when, status_note=""):
        raise EditionStateChanged("Only a draft or a scheduled edition can be scheduled.")


def unschedule_edition(digest: Digest) -> None:
    """Scheduled -> draft (the editor wants to change it before it goes)."""
    if not digest.move(Status.DRAFT, sources=[Status.SCHEDULED], scheduled_for=None):
        raise EditionStateChanged("Only a scheduled edition can be taken back to draft.")


def send_now(digest: Digest, *, now: datetime | None = None) -> None:
    """Draft or scheduled -> sending at once: scheduled for now and claimed here (the same
    claim as the tick's, so a tick running at the same moment cannot start it twice)."""
    now = now or timezone.now()
    if not DigestArticle.objects.filter(digest=digest).exists():
        raise EditionEmpty("The edition has no articles.")
    if not digest.move(Status.SCHEDULED, sources=EDITABLE_STATUSES, scheduled_for=now, status_note=""):
        raise EditionStateChanged("Only a draft or a scheduled edition can be sent.")
    claim_digest(digest.pk, now=now)
    digest.refresh_from_db()


def cancel_edition(digest: Digest, *, now: datetime | None = None) -> None:
    """Draft, scheduled or paused -> cancelled. A sending edition is paused first (its batches
    in flight finish; none is started after that)."""
    now = now or timezone.now()
    sources = [Status.DRAFT, Status.SCHEDULED, Status.PAUSED]
    if not digest.move(
        Status.CANCELLED, sources=sources, finished_at=now, status_note="Cancelled by an editor."
    ):
        raise EditionStateChanged("Only a draft, scheduled or paused edition can be cancelled.")


def reopen_edition(digest: Digest) -> None:
    """Cancelled or skipped -> draft, for an edition that never started sending."""
    if digest.started_at is not None or not digest.move(
        Status.DRAFT, sources=[Status.CANCELLED, Status.SKIPPED], finished_at=None, status_note=""
    ):
        raise EditionStateChanged("Only an edition that never started can be reopened.")


# --- Claiming (the beat tick) -----------------------------------------------------------------


def queue_start_edition(digest_id: int) -> None:
    """Queue delivery's start_edition once the current transaction commits. By name, so this
    module needs neither the task module nor its import order.

    With the broker unreachable the claim stands and nothing is raised (an editor's click or
    a CMS post must not fail after its data was stored): ``requeue_stalled`` queues the start
    again on a later tick."""
    from worker import app

    def send() -> None:
        try:
            app.send_task(START_EDITION, args=[digest_id])
        except OperationalError:
            log.warning("broker unreachable: edition %s will be started by a later tick", digest_id)

    transaction.on_commit(send)


def _claim_locked(digest: Digest, *, now: datetime) -> bool:
    if not DigestArticle.objects.filter(digest=digest).exists():
        digest.move(
            Status.SKIPPED,
            sources=[Status.SCHEDULED],
            finished_at=now,
            status_note="The edition had no articles when it was due, so none was sent.",
        )
        return False
    if digest.move(Status.SENDING, sources=[Status.SCHEDULED], started_at=now, status_note=""):
        queue_start_edition(digest.pk)
        return True
    return False


def claim_digest(digest_id: int, *, now: datetime | None = None) -> bool:
    """Start one due edition: scheduled and due -> sending, and queue its start_edition.
    True only for the one caller that moved it; a locked, early or already claimed edition
    gives False."""
    now = now or timezone.now()
    with transaction.atomic():
        digest = (
            Digest.objects.select_for_update(skip_locked=True)
            .filter(pk=digest_id, status=Status.SCHEDULED, scheduled_for__lte=now)
            .first()
        )
        return digest is not None and _claim_locked(digest, now=now)


def claim_due_digests(*, now: datetime | None = None, page: int = 20) -> list[int]:
    """Claim every due edition (scheduled, ``scheduled_for`` <= now), oldest first, a page per
    transaction. Returns the ids this call moved to sending. Concurrent callers split the due
    editions between them; none is started twice."""
    now = now or timezone.now()
    claimed: list[int] = []
    seen: set[int] = set()
    while True:
        with transaction.atomic():
            due = list(
                Digest.objects.select_for_update(skip_locked=True)
                .filter(status=Status.SCHEDULED, scheduled_for__lte=now)
                .exclude(pk__in=seen)
                .order_by("scheduled_for", "id")[:page]
            )
            for digest in due:
                seen.add(digest.pk)
                if _claim_locked(digest, now=now):
                    claimed.append(digest.pk)
        if len(due) < page:
            return claimed


def requeue_stalled(*, now: datetime | None = None) -> list[int]:
    """Queue start_edition again for editions claimed long ago whose fan-out never began (the
    process died between the claim and the queue). start_edition is safe to run twice."""
    now = now or timezone.now()
    ids = list(
        Digest.objects.filter(
            status=Status.SENDING, fanout_done=False, fanout_cursor=0, started_at__lt=now - STALLED_AFTER
        ).values_list("pk", flat=True)[:100]
    )
    for pk in ids:
        log.warning("edition %s was claimed but never started; queueing it again", pk)
        queue_start_edition(pk)
    return ids


def advance_due_schedules(*, now: datetime | None = None, limit: int = 100) -> list[Digest]:
    """Make the edition of every active schedule that is due, and move the schedule on.

    One transaction per schedule, the schedule row locked (skip_locked): two ticks never make
    one run's edition twice. A schedule that missed runs (everything was down) makes one
    edition for the latest missed run, not one per missed run. An edition with no new article
    is stored as skipped with a note. Returns the editions made.
    """
    now = now or timezone.now()
    for schedule in Schedule.objects.filter(is_active=True, next_run_at__isnull=True):
        _refresh_or_disable(schedule, now=now)
    made: list[Digest] = []
    for _ in range(limit):
        with transaction.atomic():
            schedule = (
                Schedule.objects.select_for_update(skip_locked=True)
                .filter(is_active=True, next_run_at__lte=now)
                .order_by("next_run_at", "id")
                .first()
            )
            if schedule is None:
                return made
            run_at = schedule.next_run_at
            lock_frequency(schedule.frequency)
            try:
                upcoming = schedules.next_run_after(schedule, max(now, run_at))
            except schedules.InvalidSchedule:
                log.exception("schedule %s cannot run; switched off", schedule.pk)
                Schedule.objects.filter(pk=schedule.pk).update(is_active=False, next_run_at=None)
                continue
            made.append(
                create_edition(frequency=schedule.frequency, schedule=schedule, scheduled_for=run_at, now=now)
            )
            Schedule.objects.filter(pk=schedule.pk).update(last_run_at=run_at, next_run_at=upcoming)
    return made


def _refresh_or_disable(schedule: Schedule, *, now: datetime) -> None:
    try:
        upcoming = schedules.next_run_after(schedule, now)
    except schedules.InvalidSchedule:
        Schedule.objects.filter(pk=schedule.pk).update(is_active=False)
        return
    Schedule.objects.filter(pk=schedule.pk, next_run_at__isnull=True).update(next_run_at=upcoming)


@dataclass
class TickResult:
    made: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    claimed: list[int] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)


def tick(*, now: datetime | None = None) -> TickResult:
    """The beat's minute: make the editions of due schedules, then start every due edition.
    Safe to run in several processes at once and to run late (it catches up)."""
    now = now or timezone.now()
    result = TickResult()
    for digest in advance_due_schedules(now=now):
        (result.skipped if digest.status == Status.SKIPPED else result.made).append(digest.pk)
    result.claimed = claim_due_digests(now=now)
    result.requeued = requeue_stalled(now=now)
    return result


# --- Instant alerts -----------------------------------------------------------------------------


def create_alerts(article_ids: Iterable[int], *, now: datetime | None = None) -> list[Digest]:
    """One single-article edition (frequency instant) per newly published article, scheduled
    now and claimed at once, for the subscribers who chose instant alerts.

    At most one alert per article, ever: ``Article.alerted_at`` is set by a guarded UPDATE in
    the transaction that makes the alert. Articles published more than ALERT_MAX_AGE ago are
    not alerted. Nothing is made while nobody has chosen instant alerts.
    """
    now = now or timezone.now()
    ids = list(article_ids)
    if (
        not ids
        or not Subscriber.objects.filter(
            status=Subscriber.Status.ACTIVE, frequency=Frequency.INSTANT
        ).exists()
    ):
        return []
    made: list[Digest] = []
    fresh = Article.objects.filter(pk__in=ids, alerted_at__isnull=True, published_at__gte=now - ALERT_MAX_AGE)
    for article in fresh.order_by("published_at", "id"):
        with transaction.atomic():
            if not Article.objects.filter(pk=article.pk, alerted_at__isnull=True).update(alerted_at=now):
                continue  # another process alerted it first
            digest = Digest.objects.create(
                frequency=Frequency.INSTANT,
                subject=" ".join(article.title.split())[:200] or settings.PUBLICATION_NAME,
                status=Status.SCHEDULED,
                scheduled_for=now,
                created_at=now,
            )
            _attach(digest, [article])
            view = digest_articles(digest)[0]
            Digest.objects.filter(pk=digest.pk).update(preview_text=view.excerpt_text[:200])
        made.append(digest)
    for digest in made:
        claim_digest(digest.pk, now=now)
    return made


@receiver(articles_published, dispatch_uid="mailer.digests.instant_alerts")
def _on_articles_published(sender, article_ids=(), **kwargs) -> None:
    create_alerts(article_ids)
