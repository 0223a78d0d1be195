"""Fan-out: an edition's recipients become the ledger (one Delivery row each) grouped into
provider-sized batches, page by page, before anything is sent."""

import logging
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from mailer import selectors
from mailer.models import Batch, Delivery, Digest
from mailer.sending import queue
from mailer.sending.progress import finish_if_complete

log = logging.getLogger(__name__)

# Subscribers read per keyset page; each page is one transaction of a constant number of queries.
PAGE_SIZE = 2000


@dataclass(frozen=True)
class FanoutResult:
    started: bool  # the edition is (now) sending
    recipients: int  # deliveries written by this call
    batches_queued: int


def start_edition(digest_id: int) -> FanoutResult:
    """Start sending an edition (draft or scheduled -> sending) and fan it out: every active
    subscriber of its frequency gets one Delivery row, in batches of at most
    settings.PROVIDER_BATCH_SIZE recipients of one segment, each queued for send_batch once full.

    Safe to call again and concurrently: an edition already sending resumes its fan-out from
    ``Digest.fanout_cursor`` (a killed fan-out loses nothing and writes nothing twice; two
    fan-outs of one edition cannot both write a page) and re-queues its pending batches (a
    batch queued twice is sent once). Paused, cancelled or finished editions are left alone.
    """
    now = timezone.now()
    Digest(pk=digest_id).move(
        Digest.Status.SENDING, sources=[Digest.Status.DRAFT, Digest.Status.SCHEDULED], started_at=now
    )
    Digest.objects.filter(pk=digest_id, started_at__isnull=True).update(started_at=now)
    digest = Digest.objects.filter(pk=digest_id).first()
    if digest is None or digest.status != Digest.Status.SENDING:
        return FanoutResult(False, 0, 0)

    # A run that does not start from the beginning follows one that may have died between
    # committing a page and queueing its batches.
    rerun = digest.fanout_cursor > 0 or digest.fanout_done
    written = queued = 0
    while not digest.fanout_done:
        page = _fan_out_page(digest)
        if page is None:  # another fan-out of this edition moved the cursor: it carries on
            return FanoutResult(True, written, queued)
        written += page[0]
        queued += page[1]
        digest.refresh_from_db(fields=["fanout_cursor", "fanout_done", "status", "total_recipients"])
        if digest.status != Digest.Status.SENDING:  # paused or cancelled during fan-out
            return FanoutResult(True, written, queued)

    if rerun:  # batches sealed by an earlier run, whose tasks may have died with their worker
        queued += requeue_pending_batches(digest_id)
    finish_if_complete(digest_id)
    return FanoutResult(True, written, queued)


def requeue_pending_batches(digest_id: int) -> int:
    """Queue send_batch for every sealed pending batch of an edition; the number queued."""
    count, after = 0, 0
    while ids := selectors.batch_ids(digest_id, statuses=[Batch.Status.PENDING], after_id=after):
        queue.queue_batches(ids)
        count += len(ids)
        after = ids[-1]
    return count


def _fan_out_page(digest: Digest) -> tuple[int, int] | None:
    """Write one page of the ledger in one transaction; (deliveries, batches sealed), or None
    when the cursor is no longer where this call left it."""
    size = max(1, settings.PROVIDER_BATCH_SIZE)
    with transaction.atomic():
        # The digest row lock makes the cursor a mutex: a second fan-out waits here and then
        # sees the cursor moved.
        locked = (
            Digest.objects.select_for_update()
            .filter(pk=digest.pk)
            .values("fanout_cursor", "fanout_done", "status")
            .first()
        )
        if (
            locked is None
            or locked["fanout_cursor"] != digest.fanout_cursor
            or locked["fanout_done"]
            or locked["status"] != Digest.Status.SENDING
        ):
            return None
        rows = selectors.eligible_recipients(digest, after_id=digest.fanout_cursor, limit=PAGE_SIZE)
        open_batches = {b.segment_key: b for b in Batch.objects.filter(digest=digest, sealed=False)}

        if not rows:
            for batch in open_batches.values():
                batch.sealed = True
            Batch.objects.bulk_update(open_batches.values(), ["sealed"])
            total = Delivery.objects.filter(digest=digest).count()
            Digest.objects.filter(pk=digest.pk).update(fanout_done=True, total_recipients=total)
            sealed = [b.pk for b in open_batches.values()]
            queue.queue_batches(sealed)
            return 0, len(sealed)

        by_segment: dict[str, list[int]] = defaultdict(list)
        for subscriber_id, segment_key in rows:
            by_segment[segment_key].append(subscriber_id)

        number = Batch.objects.filter(digest=digest).aggregate(n=Max("number"))["n"] or 0
        # (batch, subscriber ids) pairs; new batches get their ids from one bulk insert.
        plan: list[tuple[Batch, list[int]]] = []
        for segment_key, ids in by_segment.items():
            batch = open_batches.get(segment_key)
            while ids:
                if batch is None or batch.recipient_count >= size:
                    number += 1
                    batch = Batch(digest=digest, number=number, segment_key=segment_key)
                take = size - batch.recipient_count
                chunk, ids = ids[:take], ids[take:]
                batch.recipient_count += len(chunk)
                batch.sealed = batch.recipient_count >= size
                plan.append((batch, chunk))

        touched = list({id(b): b for b, _ in plan}.values())
        Batch.objects.bulk_update([b for b in touched if b.pk is not None], ["recipient_count", "sealed"])
        Batch.objects.bulk_create([b for b in touched if b.pk is None])
        _write_deliveries(digest, plan)
        Digest.objects.filter(pk=digest.pk).update(
            fanout_cursor=rows[-1][0], total_recipients=digest.total_recipients + len(rows)
        )
        sealed = list({b.pk for b, _ in plan if b.sealed})
        queue.queue_batches(sealed)
    log.info("fan-out page written", extra={"digest_id": digest.pk, "recipients": len(rows)})
    return len(rows), len(sealed)


def _write_deliveries(digest: Digest, plan: list[tuple[Batch, list[int]]]) -> None:
    """One pending Delivery per (batch, subscriber id) of ``plan``; a subscriber who already has
    one for this edition keeps it (ON CONFLICT DO NOTHING, as bulk_create(ignore_conflicts)).

    On PostgreSQL one INSERT ... SELECT FROM unnest(ids, batch ids): building 2,000 model
    instances for bulk_create cost more CPU than the rest of a page (bench/send_edition.py).
    Every other column gets its model default, cast to its column type."""
    subscriber_ids = [subscriber_id for _, chunk in plan for subscriber_id in chunk]
    batch_ids = [batch.pk for batch, chunk in plan for _ in chunk]
    if connection.vendor != "postgresql":
        Delivery.objects.bulk_create(
            [
                Delivery(digest=digest, subscriber_id=s, batch_id=b)
                for s, b in zip(subscriber_ids, batch_ids, strict=True)
            ],
            ignore_conflicts=True,
        )
        return
    template = Delivery(digest=digest)
    fixed = [
        f
        for f in Delivery._meta.concrete_fields
        if not f.primary_key and f.attname not in ("subscriber_id", "batch_id")
    ]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fixed)
    constants = ", ".join(f"%s::{f.db_type(connection)}" for f in fixed)
    values = [f.get_db_prep_save(getattr(template, f.attname), connection) for f in fixed]
    # Only names from the model's own metadata go into the SQL text; every value is a parameter.
    table = connection.ops.quote_name(Delivery._meta.db_table)
    sql = f"INSERT INTO {table} ({columns}, subscriber_id, batch_id) SELECT {constants}, s, b "
    sql += "FROM unnest(%s::bigint[], %s::bigint[]) AS page(s, b) ON CONFLICT DO NOTHING"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, subscriber_ids, batch_ids])
