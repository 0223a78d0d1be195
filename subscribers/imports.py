"""CSV import of subscribers, with the basis of their consent stated.

The file has a header row with ``email`` and optionally ``name``, ``topics`` (slugs or names,
separated by ``;`` or ``,`` inside the cell) and ``frequency`` (instant, daily, weekly); other
columns (an export's ``status``, dates...) are ignored and reported. UTF-8, with or without BOM.

Consent basis, one for the whole file:

- ``confirmed_elsewhere``: the readers already agreed elsewhere (the editor says where and how,
  and the words are kept in each consent record); new addresses are active at once.
- ``send_confirmation``: new addresses are pending and each is sent a confirmation email after
  the import commits (double opt-in as for the sign-up form).

All or nothing: the import runs in one transaction, and a file with any row error writes
nothing; the report lists every error with its line number. A dry run reports what would be
created, updated or left unchanged and writes nothing. Existing subscribers get the file's name,
topics and frequency where a cell is filled in; an unsubscribed, bounced or complained address
is never re-subscribed by an import (the row is skipped and reported).

Large files are streamed: rows are read, checked and written in chunks (one query to look the
chunk's addresses up, bulk writes), so memory stays flat apart from the set of addresses seen,
which finds duplicates within the file.
"""

import csv
import io
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from subscribers.addresses import InvalidAddress, normalise_email
from subscribers.models import ConsentRecord, Frequency, Subscriber, Topic

COLUMNS = ("email", "name", "topics", "frequency")
log = logging.getLogger(__name__)

CHUNK_SIZE = 1000
MAX_LISTED = 200  # errors and notices listed in the report; all are counted
NAME_MAX_LENGTH = Subscriber._meta.get_field("name").max_length
_TOPIC_SPLIT = re.compile(r"[;,|]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ConsentBasis:
    CONFIRMED_ELSEWHERE = "confirmed_elsewhere"
    SEND_CONFIRMATION = "send_confirmation"
    CHOICES = (
        (CONFIRMED_ELSEWHERE, "They already agreed elsewhere: mark them confirmed"),
        (SEND_CONFIRMATION, "Send each new address a confirmation email (double opt-in)"),
    )


class ImportRefused(Exception):
    """The file as a whole cannot be imported (no email column, not UTF-8, not CSV, no consent
    wording). Nothing was written."""


@dataclass(frozen=True)
class RowIssue:
    line: int
    email: str
    message: str


@dataclass
class ImportReport:
    dry_run: bool
    basis: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    error_count: int = 0
    errors: list[RowIssue] = field(default_factory=list)
    notices: list[RowIssue] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    confirmations_queued: int = 0
    committed: bool = False

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def summary(self) -> str:
        rows = f"{self.rows} row{'' if self.rows == 1 else 's'}"
        if self.error_count:
            return f"Nothing imported: {self.error_count} of {rows} {'has' if self.error_count == 1 else 'have'} errors."
        figures = f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, {self.skipped} skipped"
        if self.dry_run:
            return f"Dry run, nothing written: {rows} would give {figures}."
        tail = ""
        if self.confirmations_queued:
            emails = "email" if self.confirmations_queued == 1 else "emails"
            tail = f"; {self.confirmations_queued} confirmation {emails} queued"
        return f"Imported {rows}: {figures}{tail}."

    def _issue(self, bucket: list[RowIssue], line: int, email: str, message: str) -> None:
        if len(bucket) < MAX_LISTED:
            bucket.append(RowIssue(line, email[:254], message))

    def error(self, line: int, email: str, message: str) -> None:
        self.error_count += 1
        self._issue(self.errors, line, email, message)

    def notice(self, line: int, email: str, message: str) -> None:
        self._issue(self.notices, line, email, message)


@dataclass
class _Row:
    line: int
    email: str
    name: str | None  # None: the cell was empty or the column absent, leave as is
    topic_ids: list[int] | None
    frequency: str | None

    @property
    def segment_key(self) -> str:
        return ",".join(str(pk) for pk in sorted(self.topic_ids or []))


class _Rollback(Exception):
    pass


def _text_lines(source: IO) -> Iterator[str]:
    """Lines of a binary or text file as str, failing with the line number on bad UTF-8."""
    if isinstance(source, io.TextIOBase):
        yield from source
        return
    text = io.TextIOWrapper(source, encoding="utf-8-sig", newline="")
    number = 0
    try:
        for number, line in enumerate(text, start=1):  # noqa: B007 - number is read after the loop
            yield line
    except UnicodeDecodeError as exc:
        raise ImportRefused(f"The file is not UTF-8 text (near line {number + 1}).") from exc
    finally:
        text.detach()


class _Parser:
    def __init__(self, header: list[str], report: ImportReport):
        self.columns = [name.strip().lower() for name in header]
        if "email" not in self.columns:
            raise ImportRefused(
                "The first row must name the columns, with at least 'email' "
                f"(and optionally {', '.join(COLUMNS[1:])})."
            )
        duplicated = {c for c in self.columns if c and self.columns.count(c) > 1} & set(COLUMNS)
        if duplicated:
            raise ImportRefused(f"The column {sorted(duplicated)[0]!r} appears twice in the header.")
        report.ignored_columns = [c for c in self.columns if c not in COLUMNS]
        self.index = {name: self.columns.index(name) for name in COLUMNS if name in self.columns}
        self.topics: dict[str, int] = {}
        for topic in Topic.objects.only("pk", "slug", "name"):
            self.topics[topic.name.strip().lower()] = topic.pk
            self.topics[topic.slug.lower()] = topic.pk
        self.frequencies = {value: value for value in Frequency.values}
        self.frequencies.update({str(label).lower(): value for value, label in Frequency.choices})

    def cell(self, values: list[str], name: str) -> str:
        position = self.index.get(name)
        return values[position].strip() if position is not None and position < len(values) else ""

    def parse(self, line: int, values: list[str]) -> tuple[_Row | None, str, list[str]]:
        """The row, the raw email for messages, and the row's problems."""
        raw_email = self.cell(values, "email")
        problems: list[str] = []
        if len(values) > len(self.columns):
            problems.append(f"{len(values)} fields, but the header names {len(self.columns)}")
        email = ""
        try:
            email = normalise_email(raw_email)
        except InvalidAddress as exc:
            problems.append(str(exc))
        name = self.cell(values, "name")
        if _CONTROL.search(name):
            problems.append("The name contains line breaks or control characters.")
        elif len(name) > NAME_MAX_LENGTH:
            problems.append(f"The name is longer than {NAME_MAX_LENGTH} characters.")
        topic_ids: list[int] | None = None
        topics_cell = self.cell(values, "topics")
        if topics_cell:
            topic_ids = []
            for wanted in filter(None, (t.strip().lower() for t in _TOPIC_SPLIT.split(topics_cell))):
                pk = self.topics.get(wanted)
                if pk is None:
                    problems.append(f"Unknown topic {wanted[:60]!r}.")
                elif pk not in topic_ids:
                    topic_ids.append(pk)
        frequency = None
        frequency_cell = self.cell(values, "frequency").lower()
        if frequency_cell:
            frequency = self.frequencies.get(frequency_cell)
            if frequency is None:
                problems.append(
                    f"Unknown frequency {frequency_cell[:30]!r}; use one of {', '.join(Frequency.values)}."
                )
        if problems:
            return None, raw_email, problems
        return _Row(line, email, name or None, topic_ids, frequency), raw_email, []


def _rows(source: IO, report: ImportReport) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(_text_lines(source))
    try:
        for values in reader:
            if values and any(v.strip() for v in values):
                yield reader.line_num, values
    except csv.Error as exc:
        raise ImportRefused(f"Line {reader.line_num} is not valid CSV: {exc}.") from exc


class _Writer:
    """Classifies a chunk of valid rows against the database and, when ``write``, applies it."""

    def __init__(self, report: ImportReport, *, basis: str, wording: str, write: bool):
        self.report = report
        self.basis = basis
        self.wording = wording
        self.write = write
        self.now = timezone.now()
        self.pending_ids: list[int] = []  # new pending subscribers to confirm after commit

    def apply(self, rows: list[_Row]) -> None:
        existing = {
            s.email: s
            for s in Subscriber.objects.filter(email__in=[r.email for r in rows]).only(
                "pk", "email", "name", "frequency", "segment_key", "status", "unsubscribed_at"
            )
        }
        new_rows, changed, confirm_ids, topic_changes = [], [], [], {}
        for row in rows:
            subscriber = existing.get(row.email)
            if subscriber is None:
                new_rows.append(row)
                continue
            if subscriber.status not in (Subscriber.Status.ACTIVE, Subscriber.Status.PENDING):
                self.report.skipped += 1
                self.report.notice(
                    row.line,
                    row.email,
                    f"{subscriber.get_status_display()}: an import never subscribes this address again.",
                )
                continue
            dirty = False
            if row.name is not None and row.name != subscriber.name:
                subscriber.name, dirty = row.name, True
            if row.frequency is not None and row.frequency != subscriber.frequency:
                subscriber.frequency, dirty = row.frequency, True
            if row.topic_ids is not None and row.segment_key != subscriber.segment_key:
                subscriber.segment_key, dirty = row.segment_key, True
                topic_changes[subscriber.pk] = row.topic_ids
            confirms = (
                subscriber.status == Subscriber.Status.PENDING
                and self.basis == ConsentBasis.CONFIRMED_ELSEWHERE
            )
            if confirms:
                confirm_ids.append(subscriber.pk)
            if dirty:
                changed.append(subscriber)
            if dirty or confirms:
                self.report.updated += 1
            else:
                self.report.unchanged += 1
        self.report.created += len(new_rows)
        if self.write:
            self._create(new_rows)
            self._update(changed, confirm_ids, topic_changes)

    def _create(self, rows: list[_Row]) -> None:
        if not rows:
            return
        active = self.basis == ConsentBasis.CONFIRMED_ELSEWHERE
        _insert(
            Subscriber,
            [
                {
                    "email": row.email,
                    "name": row.name or "",
                    "frequency": row.frequency or Frequency.DAILY,
                    "segment_key": row.segment_key,
                    "status": Subscriber.Status.ACTIVE if active else Subscriber.Status.PENDING,
                    "created_at": self.now,
                    "confirmed_at": self.now if active else None,
                }
                for row in rows
            ],
        )
        ids = dict(Subscriber.objects.filter(email__in=[r.email for r in rows]).values_list("email", "pk"))
        through = Subscriber.topics.through
        _insert(
            through,
            [
                {"subscriber_id": ids[row.email], "topic_id": topic_id}
                for row in rows
                for topic_id in row.topic_ids or []
            ],
        )
        action = ConsentRecord.Action.CONFIRM if active else ConsentRecord.Action.SUBSCRIBE
        created = [ids[row.email] for row in rows]
        self._consent(created, action)
        if not active:
            self.pending_ids.extend(created)

    def _update(
        self, changed: list[Subscriber], confirm_ids: list[int], topics: dict[int, list[int]]
    ) -> None:
        if changed:
            Subscriber.objects.bulk_update(changed, ["name", "frequency", "segment_key"])
            self._consent([s.pk for s in changed], ConsentRecord.Action.CHANGE)
        if topics:
            through = Subscriber.topics.through
            through.objects.filter(subscriber_id__in=list(topics)).delete()
            through.objects.bulk_create(
                [through(subscriber_id=pk, topic_id=t) for pk, ids in topics.items() for t in ids]
            )
        if confirm_ids:
            # Guarded like Subscriber.confirm: only rows still pending move.
            Subscriber.objects.filter(pk__in=confirm_ids, status=Subscriber.Status.PENDING).update(
                status=Subscriber.Status.ACTIVE, confirmed_at=self.now
            )
            self._consent(confirm_ids, ConsentRecord.Action.CONFIRM)

    def _consent(self, ids: list[int], action: str) -> None:
        values = {"action": action, "source": ConsentRecord.Source.IMPORT, "wording": self.wording}
        _insert(ConsentRecord, [{"subscriber_id": pk, **values, "created_at": self.now} for pk in ids])


def _varying_default(field) -> bool:
    # uuid4, not "no default" (NOT_PROVIDED is a class, so callable() alone would say yes).
    return field.has_default() and callable(field.default)


def _insert(model, rows: list[dict]) -> None:
    """INSERT ``rows`` into ``model``'s table with one ``executemany``.

    ``bulk_create`` builds a model instance and prepares every field of every row through the
    ORM, which was most of an import's time; here each distinct value of a column is prepared
    once (a chunk has few: one status, one time), and the rows go to PostgreSQL by COPY (to
    SQLite by executemany). Fields a row leaves out get their model default, a callable one
    (``uuid``) per row.
    """
    if not rows:
        return
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    given = rows[0].keys()
    per_row_default = {f.attname for f in fields if f.attname not in given and _varying_default(f)}
    constant = {
        f.attname: f.get_db_prep_save(f.get_default(), connection)
        for f in fields
        if f.attname not in given and not _varying_default(f)
    }
    prepared: dict[tuple[str, object], object] = {}

    def prep(field, value):
        key = (field.attname, value)
        if key not in prepared:
            prepared[key] = field.get_db_prep_save(value, connection)
        return prepared[key]

    params = []
    for row in rows:
        values = []
        for f in fields:
            name = f.attname
            if name in constant:
                values.append(constant[name])
            elif name in per_row_default:
                values.append(f.get_db_prep_save(f.get_default(), connection))
            elif name in _PLAIN:
                values.append(row[name])  # text and ids go to the driver as they are
            else:
                values.append(prep(f, row[name]))
        params.append(values)
    quote = connection.ops.quote_name
    table, columns = quote(model._meta.db_table), ", ".join(quote(f.column) for f in fields)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY streams the rows in one round trip; executemany would make one per row.
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for values in params:
                    copy.write_row(values)
        else:
            # Names come from the model and are quoted; every value is a parameter.
            placeholders = ", ".join(["%s"] * len(fields))
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", params)  # noqa: S608


# Columns whose values differ on every row and need no conversion for the database.
_PLAIN = frozenset({"email", "name", "segment_key", "subscriber_id", "topic_id", "wording"})


def _queue_confirmations(ids: list[int]) -> None:
    from subscribers.tasks import send_confirmation

    # One broker connection for all the messages rather than one per address.
    with send_confirmation.app.producer_or_acquire() as producer:
        for pk in ids:
            send_confirmation.apply_async((pk,), producer=producer)


def import_subscribers(
    source: IO,
    *,
    basis: str,
    wording: str = "",
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> ImportReport:
    """Import the CSV in ``source`` (a binary or text file object) with the stated consent
    ``basis`` (``ConsentBasis``); ``wording`` says where and how consent was given (required for
    ``confirmed_elsewhere``) and is kept in every consent record written.

    Returns an ``ImportReport``. Writes nothing when ``dry_run`` or when any row has an error
    (``report.committed`` is False then); otherwise everything in one transaction, and the
    confirmation emails (``send_confirmation`` basis) are queued after it commits. Importing the
    same file twice creates nothing the second time. ``progress(rows_read)`` is called after each
    chunk. Raises ``ImportRefused`` for a file that cannot be read as a whole.
    """
    if basis not in (ConsentBasis.CONFIRMED_ELSEWHERE, ConsentBasis.SEND_CONFIRMATION):
        raise ImportRefused(
            f"Choose the consent basis: {ConsentBasis.CONFIRMED_ELSEWHERE} or {ConsentBasis.SEND_CONFIRMATION}."
        )
    wording = wording.strip()
    if basis == ConsentBasis.CONFIRMED_ELSEWHERE and len(wording) < 10:
        raise ImportRefused("Say where and how these readers agreed to receive the newsletter.")
    if not wording:
        wording = "Imported; a confirmation email asks each new reader to confirm."
    report = ImportReport(dry_run=dry_run, basis=basis)
    try:
        with transaction.atomic():
            writer = _import(
                source,
                report,
                basis=basis,
                wording=wording,
                dry_run=dry_run,
                progress=progress,
                chunk_size=chunk_size,
            )
            if dry_run or not report.ok:
                raise _Rollback
            if writer.pending_ids:
                ids = writer.pending_ids
                transaction.on_commit(lambda: _queue_confirmations(ids))
                report.confirmations_queued = len(ids)
            report.committed = True
    except _Rollback:
        pass
    except IntegrityError as exc:
        raise ImportRefused(
            "An address in the file was added by someone else during the import; nothing was "
            "imported, please run it again."
        ) from exc
    log.info(
        "subscriber import %s",
        "committed" if report.committed else ("checked" if dry_run else "refused"),
        extra={
            "basis": basis,
            "rows": report.rows,
            "added": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "skipped": report.skipped,
            "errors": report.error_count,
        },
    )
    return report


def _import(source, report, *, basis, wording, dry_run, progress, chunk_size) -> _Writer:
    rows = _rows(source, report)
    first = next(rows, None)
    if first is None:
        raise ImportRefused("The file is empty.")
    parser = _Parser(first[1], report)
    writer = _Writer(report, basis=basis, wording=wording, write=not dry_run)
    seen: dict[str, int] = {}
    chunk: list[_Row] = []
    for line, values in rows:
        report.rows += 1
        row, raw_email, problems = parser.parse(line, values)
        if problems:
            report.error(line, raw_email, " ".join(problems))
            writer.write = False  # the import will be rolled back: only keep checking
        elif row.email in seen:
            report.skipped += 1
            report.notice(line, row.email, f"Same address as line {seen[row.email]}; this row is ignored.")
        else:
            seen[row.email] = line
            chunk.append(row)
        if len(chunk) >= chunk_size:
            writer.apply(chunk)
            chunk = []
            if progress:
                progress(report.rows)
    if chunk:
        writer.apply(chunk)
    if progress:
        progress(report.rows)
    return writer
