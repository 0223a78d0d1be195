"""When an edition is over: the one place that moves sending -> sent."""

from django.db.models import Exists, OuterRef
from django.utils import timezone

from mailer.models import Delivery, Digest


def finish_if_complete(digest_id: int) -> bool:
    """sending -> sent, with finished_at, exactly when the fan-out is done and no delivery is
    pending (every one is sent, failed with a reason or skipped with a reason, so the counts add
    up to the total). One guarded UPDATE: called by every batch that ends, it succeeds once."""
    pending = Delivery.objects.filter(digest_id=OuterRef("pk"), status=Delivery.Status.PENDING)
    total = Delivery.objects.filter(digest_id=digest_id).count()
    # Not Digest.move: the "nothing pending" guard must be in the same UPDATE. sending -> sent is
    # a move the life-cycle table allows.
    changed = (
        Digest.objects.filter(pk=digest_id, status=Digest.Status.SENDING, fanout_done=True)
        .exclude(Exists(pending))
        .update(status=Digest.Status.SENT, finished_at=timezone.now(), total_recipients=total, status_note="")
    )
    return bool(changed)
