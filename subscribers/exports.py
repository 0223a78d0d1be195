"""CSV export of subscribers, streamed: any queryset (the admin list as filtered, or everyone)
is walked by primary key in chunks, so a million rows cost the memory of one chunk.

The first four columns are those ``subscribers.imports`` reads (email, name, topics, frequency),
so an export can be edited and imported again; the rest describe the subscription. Topics are
written as slugs from the subscriber's ``segment_key``, which needs no join per row.
"""

import csv
from collections.abc import Iterator
from typing import IO

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from subscribers.models import Subscriber, Topic

COLUMNS = (
    "email",
    "name",
    "topics",
    "frequency",
    "status",
    "language",
    "created_at",
    "confirmed_at",
    "unsubscribed_at",
    "suppressed_reason",
)
_FIELDS = (
    "pk",
    "email",
    "name",
    "segment_key",
    "frequency",
    "status",
    "language",
    "created_at",
    "confirmed_at",
    "unsubscribed_at",
    "suppressed_reason",
)
CHUNK_SIZE = 2000
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def rows(queryset: QuerySet[Subscriber]) -> Iterator[list[str]]:
    """The header, then one list of cells per subscriber of ``queryset``, in primary key order
    (keyset pagination: ``pk > last`` per chunk, so the walk is stable and each query cheap)."""
    slugs = dict(Topic.objects.values_list("pk", "slug"))
    base = queryset.prefetch_related(None).order_by("pk").values_list(*_FIELDS)
    yield list(COLUMNS)
    last = 0
    while True:
        chunk = list(base.filter(pk__gt=last)[:CHUNK_SIZE])
        if not chunk:
            return
        for pk, email, name, segment_key, *rest in chunk:
            topics = ";".join(slugs.get(int(t), t) for t in segment_key.split(",")) if segment_key else ""
            frequency, status, language, created, confirmed, unsubscribed, reason = rest
            yield [
                _cell(v)
                for v in (
                    email,
                    name,
                    topics,
                    frequency,
                    status,
                    language,
                    created,
                    confirmed,
                    unsubscribed,
                    reason,
                )
            ]
            last = pk


def write_csv(queryset: QuerySet[Subscriber], out: IO[str]) -> int:
    """Write the export of ``queryset`` to the text file ``out``; returns the subscriber count."""
    writer = csv.writer(out)
    count = -1
    for row in rows(queryset):
        writer.writerow(row)
        count += 1
    return count


class _Echo:
    """A file-like object whose write returns the line, for csv.writer in a streamed response."""

    def write(self, value: str) -> str:
        return value


def streaming_response(queryset: QuerySet[Subscriber], *, name: str = "subscribers") -> StreamingHttpResponse:
    """A CSV download of ``queryset`` produced while it is sent (never held whole in memory)."""
    writer = csv.writer(_Echo())
    filename = f"{name}-{timezone.now():%Y%m%d-%H%M}.csv"
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in rows(queryset)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
