"""When an edition is over: the one place that moves sending -> sent."""

from django.db.models import Count, Exists, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from mailer.models import Delivery, Digest


def finish_if_complete(digest_id: int) -> bool:
    """sending -> sent, with finished_at, exactly when the fan-out is done and no delivery is
    pending (every one is sent, failed with a reason or skipped with a reason, so the counts add
    up to the total). One guarded UPDATE: called by every batch that ends, it succeeds once."""
    pending = Delivery.objects.filter(digest_id=OuterRef("pk"), status=Delivery.Status.PENDING)
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
    # Not Digest.move: the "nothing pending" guard must be in the same UPDATE. sending -> sent is
    # a move the life-cycle table allows.
    changed = (
        Digest.objects.filter(pk=digest_id, status=Digest.Status.SENDING, fanout_done=True)
        .exclude(Exists(pending))
        .update(status=Digest.Status.SENT, finished_at=timezone.now(), total_recipients=total, status_note="")
    )
    return bool(changed)
