"""When an edition is over: the one place that moves sending -> sent."""

from django.db.models import Case, Count, Exists, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from mailer.models import Delivery, Digest


def finish_if_complete(digest_id: int) -> bool:
    """sending -> sent, with finished_at, exactly when the fan-out is done and no delivery is
    pending (every one is sent, failed with a reason or skipped with a reason, so the counts add
    up to the total). An edition whose deliveries all failed (none sent) ends "failed" instead,
    so an editor does not read a green "sent" for mail that never left; "retry failed" still
    works from there. One guarded UPDATE: called by every batch that ends, it succeeds once."""
    pending = Delivery.objects.filter(digest_id=OuterRef("pk"), status=Delivery.Status.PENDING)
    failed = Delivery.objects.filter(digest_id=OuterRef("pk"), status=Delivery.Status.FAILED)
    sent = Delivery.objects.filter(digest_id=OuterRef("pk"), status=Delivery.Status.SENT)
    nothing_left = Q(Exists(failed)) & ~Q(Exists(sent))
    # A subquery of the UPDATE, so the ledger is counted once, by the call that finishes the
    # edition, and not by every batch (a million-row count per batch made a send quadratic).
    total = Coalesce(
        Subquery(
            Delivery.objects.filter(digest_id=OuterRef("pk"))
            .order_by()
            .values("digest_id")
            .annotate(n=Count("id"))
            .values("n")
        ),
        0,
    )
    # Not Digest.move: the "nothing pending" guard must be in the same UPDATE. sending -> sent
    # and sending -> failed are moves the life-cycle table allows.
    changed = (
        Digest.objects.filter(pk=digest_id, status=Digest.Status.SENDING, fanout_done=True)
        .exclude(Exists(pending))
        .update(
            status=Case(
                When(nothing_left, then=Value(Digest.Status.FAILED)), default=Value(Digest.Status.SENT)
            ),
            status_note=Case(
                When(nothing_left, then=Value("No recipient could be sent to: see the failed recipients.")),
                default=Value(""),
            ),
            finished_at=timezone.now(),
            total_recipients=total,
        )
    )
    return bool(changed)
