"""A stored call, and the message each of its recipients received (personalised on read)."""

import json
import sqlite3
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parseaddr

from .mailgun import by_address, personalise


def pack(text: str) -> bytes:
    """Bodies and recipient variables are stored compressed: a digest's HTML and its per-reader
    links compress about four times over, for a few milliseconds per 1,000-recipient call."""
    return zlib.compress(text.encode(), 1)


def unpack(blob: bytes) -> str:
    return zlib.decompress(blob).decode()


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="milliseconds")


@dataclass
class Call:
    """A stored call with its JSON parsed, ready to personalise recipients from."""

    id: int
    message_id: str
    domain: str
    created_at: float
    sender: str
    subject: str
    text: str
    html: str
    headers: dict
    variables: dict
    recipient_variables: dict | None
    tags: list
    options: dict
    first_message_id: int
    message_count: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Call":
        return cls(
            id=row["id"],
            message_id=row["message_id"],
            domain=row["domain"],
            created_at=row["created_at"],
            sender=row["sender"],
            subject=row["subject"],
            text=unpack(row["text"]),
            html=unpack(row["html"]),
            headers=json.loads(row["headers"]),
            variables=json.loads(row["variables"]),
            recipient_variables=by_address(
                json.loads(unpack(row["recipient_variables"]))
                if row["recipient_variables"] is not None
                else None
            ),
            tags=json.loads(row["tags"]),
            options=json.loads(row["options"]),
            first_message_id=row["first_message_id"],
            message_count=row["message_count"],
        )

    @property
    def batch(self) -> bool:
        return self.recipient_variables is not None

    def expand(self, row: sqlite3.Row, siblings: list[str] | None = None, *, bodies: bool = True) -> dict:
        """The message one recipient received: placeholders filled in batch mode. Without
        ``bodies`` the html and text are left out (webhook events need only the envelope)."""
        address = parseaddr(row["display"])[1] or row["recipient"]
        # In batch mode each "to" address has its own variables; cc and bcc copies have none.
        batch_to = self.batch and row["kind"] == "to"
        values = (self.recipient_variables or {}).get(row["recipient"], {}) if batch_to else None

        def fill(template: str) -> str:
            return personalise(template, address, values) if values is not None else template

        subject = fill(self.subject)
        headers = {
            "From": self.sender,
            "To": row["display"] if self.batch or not siblings else ", ".join(siblings),
        }
        headers["Subject"] = subject
        headers["Message-Id"] = self.message_id
        headers.update({name: fill(value) for name, value in self.headers.items()})
        return {
            "id": row["id"],
            "message_id": self.message_id,
            "batch_id": self.id,
            "recipient": address,
            "to": row["display"],
            "kind": row["kind"],
            "from": self.sender,
            "subject": subject,
            "headers": headers,
            "html": fill(self.html) if bodies else None,
            "text": fill(self.text) if bodies else None,
            "created_at": iso(self.created_at),
            "timestamp": self.created_at,
            "metadata": {key: fill(value) for key, value in self.variables.items()},
            "tags": list(self.tags),
            "options": dict(self.options),
            "domain": self.domain,
        }
