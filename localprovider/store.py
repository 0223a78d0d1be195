"""The local provider's SQLite store.

Each accepted call is stored once (subject, bodies, headers, recipient variables as JSON) with
one small row per recipient; a message is personalised when it is read. So a million
recipients of a 60 KB digest cost a thousand bodies and a million ~70-byte rows, not 60 GB.

Every write to the file appends (row ids only grow): no index with random keys, whose inserts
would touch a different page per recipient and slow each call down as the file grows. Whether
a recipient is new, and whether a message is an extra copy of an email, is looked up in two
in-memory key tables of the writer connection (rebuilt from the file when it opens) and kept
as counters, so every figure is O(1) at a million messages.
"""

import hashlib
import json
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .calls import Call, pack
from .mailgun import Submission, by_address, header_value, personalise

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL,
    domain TEXT NOT NULL,
    created_at REAL NOT NULL,
    sender TEXT NOT NULL,
    subject TEXT NOT NULL,
    text BLOB NOT NULL,
    html BLOB NOT NULL,
    headers TEXT NOT NULL,
    variables TEXT NOT NULL,
    recipient_variables BLOB,
    tags TEXT NOT NULL,
    options TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    first_message_id INTEGER NOT NULL,
    message_count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    call_id INTEGER NOT NULL,
    recipient_hash INTEGER NOT NULL,
    copy_hash INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    display TEXT NOT NULL,
    kind TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS marks (address TEXT PRIMARY KEY, event TEXT NOT NULL);
"""

# Bumped when the tables change; an older inbox file is emptied rather than misread.
SCHEMA_VERSION = 4
TABLES = ("calls", "messages", "counters", "marks")
OLD_TABLES = ("recipients", "copies")  # of version 3
SEEN = """
ATTACH DATABASE ':memory:' AS seen;
CREATE TABLE seen.recipients (id INTEGER PRIMARY KEY);
CREATE TABLE seen.copies (id INTEGER PRIMARY KEY);
INSERT OR IGNORE INTO seen.recipients SELECT recipient_hash FROM main.messages;
INSERT OR IGNORE INTO seen.copies SELECT copy_hash FROM main.messages;
"""

COUNTERS = (
    "calls",
    "accepted_calls",
    "rejected_calls",
    "idempotent_replays",
    "messages",
    "unique_recipients",
    "duplicates",
)


def hash63(text: str) -> int:
    """A stable 63-bit hash (fits SQLite's signed integer keys; collisions are negligible)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> 1


@dataclass(frozen=True)
class Accepted:
    call_id: int
    message_id: str
    replayed: bool = False


class Store:
    """Thread-safe access to one SQLite file (WAL: readers never wait for the writer)."""

    def __init__(self, path: str):
        self.path = path
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        # Calls never change once stored (reset clears this), so parsed bodies are shared.
        self._calls: OrderedDict[int, Call] = OrderedDict()
        self._calls_lock = threading.Lock()
        with self._write_lock:
            con = self._connection()
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                # A local inbox from an older version: start it afresh.
                for table in (*TABLES, *OLD_TABLES):
                    con.execute(f"DROP TABLE IF EXISTS {table}")
            con.executescript(SCHEMA)
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # --- connections -----------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    def _writer_connection(self) -> sqlite3.Connection:
        """The one connection that writes (under the write lock), with the in-memory key tables;
        opened on the first write, so reading (the list command) never builds them."""
        if self._writer is None:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.executescript(SEEN)
            self._writer = con
        return self._writer

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            con = self._writer_connection()
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    @staticmethod
    def _bump(con: sqlite3.Connection, counts: dict[str, int]) -> None:
        con.executemany(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            counts.items(),
        )

    # --- writing ---------------------------------------------------------------------------
    def accept(self, submission: Submission, message_id: str, *, answered: int = 200) -> Accepted:
        """Record a call and its recipients in one transaction.

        A call whose idempotency key was already accepted records nothing and returns the
        original call (``replayed=True``); the key check and the insert share the transaction,
        so two concurrent calls with one key record once.
        """
        now = time.time()
        key = submission.idempotency_key
        with self._write() as con:
            if key:
                row = con.execute(
                    "SELECT id, message_id FROM calls WHERE idempotency_key = ?", (key,)
                ).fetchone()
                if row:
                    self._bump(con, {"calls": 1, "idempotent_replays": 1, "status:200": 1})
                    return Accepted(row["id"], row["message_id"], replayed=True)
            last = con.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()[0]
            rv_json = submission.recipient_variables_json
            if rv_json is None and submission.recipient_variables is not None:
                rv_json = json.dumps(submission.recipient_variables)
            cur = con.execute(
                "INSERT INTO calls (message_id, domain, created_at, sender, subject, text, html, headers,"
                " variables, recipient_variables, tags, options, idempotency_key, first_message_id,"
                " message_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    message_id,
                    submission.domain,
                    now,
                    submission.sender,
                    submission.subject,
                    pack(submission.text),
                    pack(submission.html),
                    json.dumps(submission.headers),
                    json.dumps(submission.variables),
                    pack(rv_json) if rv_json is not None else None,
                    json.dumps(submission.tags),
                    json.dumps(submission.options),
                    key,
                    last + 1,
                    len(submission.recipients),
                ),
            )
            call_id = cur.lastrowid
            rows = self._recipient_rows(submission, call_id, last + 1)
            con.executemany(
                "INSERT INTO messages (id, call_id, recipient_hash, copy_hash, recipient, display, kind)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            new_recipients = self._insert_new(con, "seen.recipients", [(row[2],) for row in rows])
            new_copies = self._insert_new(con, "seen.copies", [(row[3],) for row in rows])
            self._bump(
                con,
                {
                    "calls": 1,
                    "accepted_calls": 1,
                    "messages": len(rows),
                    "unique_recipients": new_recipients,
                    "duplicates": len(rows) - new_copies,
                    f"status:{answered}": 1,
                },
            )
        return Accepted(call_id, message_id)

    @staticmethod
    def _insert_new(con: sqlite3.Connection, table: str, keys: list[tuple[int]]) -> int:
        """Insert the keys not yet in ``table``; return how many were new."""
        before = con.total_changes
        con.executemany(f"INSERT OR IGNORE INTO {table} (id) VALUES (?)", keys)  # noqa: S608 - fixed names
        return con.total_changes - before

    @staticmethod
    def _recipient_rows(submission: Submission, call_id: int, first_id: int) -> list[tuple]:
        """The message rows with their recipient and copy keys: two messages are "the same
        email" for a recipient when they carry the same X-Digest-Id header, or, without one,
        the same subject (both after personalisation)."""
        identity = header_value(submission.headers, "X-Digest-Id")
        template = identity if identity is not None else submission.subject
        rv = by_address(submission.recipient_variables)
        rows = []
        for offset, recipient in enumerate(submission.recipients):
            lowered = recipient.address.lower()
            values = rv.get(lowered, {}) if rv is not None and recipient.kind == "to" else None
            filled = personalise(template, recipient.address, values) if values is not None else template
            rows.append(
                (
                    first_id + offset,
                    call_id,
                    hash63(lowered),
                    hash63(f"{lowered}\0{filled}"),
                    lowered,
                    recipient.display,
                    recipient.kind,
                )
            )
        return rows

    def count_rejected(self, status: int) -> None:
        with self._write() as con:
            self._bump(con, {"calls": 1, "rejected_calls": 1, f"status:{status}": 1})

    def set_mark(self, address: str, event: str | None) -> None:
        with self._write() as con:
            if event is None:
                con.execute("DELETE FROM marks WHERE address = ?", (address.lower(),))
            else:
                con.execute(
                    "INSERT INTO marks (address, event) VALUES (?, ?) "
                    "ON CONFLICT (address) DO UPDATE SET event = excluded.event",
                    (address.lower(), event),
                )

    def reset(self) -> None:
        with self._write() as con:
            for table in (*TABLES, "seen.recipients", "seen.copies"):
                con.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
        with self._calls_lock:
            self._calls.clear()

    # --- reading ---------------------------------------------------------------------------
    def marks(self) -> dict[str, str]:
        return dict(self._connection().execute("SELECT address, event FROM marks").fetchall())

    def call(self, call_id: int) -> Call | None:
        with self._calls_lock:
            if call_id in self._calls:
                self._calls.move_to_end(call_id)
                return self._calls[call_id]
        row = self._connection().execute("SELECT * FROM calls WHERE id = ?", (call_id,)).fetchone()
        if row is None:
            return None
        call = Call.from_row(row)
        with self._calls_lock:
            self._calls[call_id] = call
            while len(self._calls) > 32:
                self._calls.popitem(last=False)
        return call

    def call_messages(self, call: Call) -> list[sqlite3.Row]:
        return (
            self._connection()
            .execute(
                "SELECT id, call_id, recipient, display, kind FROM messages WHERE id BETWEEN ? AND ? ORDER BY id",
                (call.first_message_id, call.first_message_id + call.message_count - 1),
            )
            .fetchall()
        )

    def expand_rows(self, rows: list[sqlite3.Row], *, bodies: bool = True) -> list[dict]:
        out = []
        siblings: dict[int, list[str]] = {}
        for row in rows:
            call = self.call(row["call_id"])
            if call is None:
                continue
            if not call.batch and call.message_count > 1 and call.id not in siblings:
                # One email to several people: each copy shows every "to" address.
                siblings[call.id] = [r["display"] for r in self.call_messages(call) if r["kind"] == "to"]
            out.append(call.expand(row, siblings.get(call.id), bodies=bodies))
        return out

    def message(self, message_id: int) -> dict | None:
        row = (
            self._connection()
            .execute("SELECT id, call_id, recipient, display, kind FROM messages WHERE id = ?", (message_id,))
            .fetchone()
        )
        return self.expand_rows([row])[0] if row else None

    def messages(self, *, to: str | None = None, subject: str | None = None, limit: int = 100) -> list[dict]:
        """The latest messages, newest first, personalised; ``to`` matches the address exactly
        (case-insensitively), ``subject`` is a case-insensitive substring of the subject seen."""
        con = self._connection()
        found: list[dict] = []
        before = None
        chunk = max(limit, 200)
        while len(found) < limit:
            clauses, params = [], []
            if to:
                clauses.append("m.recipient_hash = ? AND m.recipient = ?")
                params.extend([hash63(to.strip().lower()), to.strip().lower()])
            if before is not None:
                clauses.append("m.id < ?")
                params.append(before)
            join = ""
            if subject and subject.isascii():
                # Prefilter in SQL (its lower() knows only ASCII); personalised subjects are
                # checked after expansion.
                join = " JOIN calls c ON c.id = m.call_id"
                clauses.append("(instr(lower(c.subject), ?) > 0 OR instr(c.subject, '%recipient') > 0)")
                params.append(subject.lower())
            where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
            rows = con.execute(
                f"SELECT m.id, m.call_id, m.recipient, m.display, m.kind FROM messages m{join}{where}"  # noqa: S608
                " ORDER BY m.id DESC LIMIT ?",
                [*params, chunk],
            ).fetchall()
            if not rows:
                break
            before = rows[-1]["id"]
            if subject:
                # Personalise the envelope first; bodies only for the messages that match.
                wanted = subject.lower()
                matching = {
                    m["id"] for m in self.expand_rows(rows, bodies=False) if wanted in m["subject"].lower()
                }
                rows = [row for row in rows if row["id"] in matching]
            found.extend(self.expand_rows(rows[: limit - len(found)]))
        return found

    def stats(self) -> dict:
        """Every figure is a counter kept in the accepting transaction. ``duplicates`` counts
        messages to a recipient who had already received the same email (same X-Digest-Id, or
        same subject without one): messages minus distinct (recipient, email) pairs."""
        rows = self._connection().execute("SELECT name, value FROM counters").fetchall()
        values = dict.fromkeys(COUNTERS, 0)
        by_status: dict[str, int] = {}
        for name, value in rows:
            if name.startswith("status:"):
                by_status[name.removeprefix("status:")] = value
            else:
                values[name] = value
        return {**values, "by_status": by_status}
