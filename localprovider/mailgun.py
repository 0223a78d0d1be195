"""Mailgun's v3 messages API as the local provider understands it.

Parsing and validating one ``POST /v3/<domain>/messages`` form into a :class:`Submission`, and
Mailgun's batch personalisation: with ``recipient-variables`` every ``to`` address gets its own
message in which ``%recipient.<key>%`` is that recipient's value and ``%recipient%`` the address.
"""

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import getaddresses

# Mailgun accepts at most 1,000 recipients per call.
MAX_RECIPIENTS = 1000

_PLACEHOLDER = re.compile(r"%recipient(?:\.([^%\s]+))?%")
_ADDRESS = re.compile(r"^[^@\s<>\"(),;:]+@[^@\s<>\"(),;:]+\.[^@\s<>\"(),;:]+$")


class Rejected(Exception):
    """A call the provider refuses, answered with ``status`` and ``{"message": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Recipient:
    address: str  # the bare address as given
    display: str  # as it appeared in the call, "Name <addr>" or "addr"
    kind: str  # "to", "cc" or "bcc"


@dataclass
class Submission:
    """One accepted-looking call, before it is stored."""

    domain: str
    sender: str
    recipients: list[Recipient]
    subject: str
    text: str
    html: str
    headers: dict[str, str]
    variables: dict[str, str]
    recipient_variables: dict[str, dict] | None
    tags: list[str]
    options: dict[str, object] = field(default_factory=dict)
    # The recipient-variables JSON as received, stored as is (re-encoding 1 MB costs ~10 ms).
    recipient_variables_json: str | None = None

    @property
    def idempotency_key(self) -> str | None:
        return header_value(self.headers, "X-Idempotency-Key") or None


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """A header by case-insensitive name."""
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def personalise(template: str, address: str, variables: Mapping[str, object]) -> str:
    """``template`` with Mailgun's recipient placeholders filled for one recipient.

    Unknown keys are left as written, so a missing merge value shows in the recorded email.
    """
    if "%recipient" not in template:
        return template

    def fill(match: re.Match) -> str:
        key = match.group(1)
        if key is None:
            return address
        if key in variables:
            value = variables[key]
            return value if isinstance(value, str) else json.dumps(value)
        return match.group(0)

    return _PLACEHOLDER.sub(fill, template)


def _parse_recipients(values: Iterable[str], kind: str) -> list[Recipient]:
    recipients = []
    for raw in values:
        bare = raw.strip()
        if _ADDRESS.match(bare):  # the common case, without the cost of a full address parser
            recipients.append(Recipient(bare, bare, kind))
            continue
        for _name, address in getaddresses([raw]):
            address = address.strip()
            if not _ADDRESS.match(address):
                raise Rejected(400, f"'{kind}' parameter is not a valid address. please check documentation")
            name = _name.strip()
            recipients.append(Recipient(address, f"{name} <{address}>" if name else address, kind))
    return recipients


def _single(form, name: str) -> str:
    values = form.getlist(name)
    return values[-1] if values else ""


def parse_submission(domain: str, form) -> Submission:
    """Validate a messages call (a werkzeug MultiDict) the way Mailgun does.

    Raises :class:`Rejected` (400) for what Mailgun refuses: no from, no to, more than
    1,000 recipients, malformed recipient-variables, no body, CR/LF in a header value.
    """
    senders = [value for value in form.getlist("from") if value.strip()]
    if not senders:
        raise Rejected(400, "'from' parameter is missing")
    for name in ("from", "to", "cc", "bcc"):
        if any("\r" in value or "\n" in value for value in form.getlist(name)):
            raise Rejected(400, f"'{name}' parameter is not a valid address. please check documentation")
    if not [value for value in form.getlist("to") if value.strip()]:
        raise Rejected(400, "'to' parameter is missing")
    recipients = (
        _parse_recipients(form.getlist("to"), "to")
        + _parse_recipients(form.getlist("cc"), "cc")
        + _parse_recipients(form.getlist("bcc"), "bcc")
    )
    if len(recipients) > MAX_RECIPIENTS:
        raise Rejected(400, f"Too many recipients: {len(recipients)}, the maximum is {MAX_RECIPIENTS}")
    text, html = _single(form, "text"), _single(form, "html")
    if not text and not html and not form.get("template"):
        raise Rejected(400, "Need at least one of 'text', 'html' or 'template' parameters specified")

    recipient_variables = recipient_variables_json = None
    if "recipient-variables" in form:
        recipient_variables_json = _single(form, "recipient-variables")
        try:
            recipient_variables = json.loads(recipient_variables_json)
        except ValueError:
            raise Rejected(400, "'recipient-variables' parameter is not a valid JSON") from None
        if not isinstance(recipient_variables, dict) or not all(
            isinstance(value, dict) for value in recipient_variables.values()
        ):
            raise Rejected(400, "'recipient-variables' must be a JSON object of objects per address")

    headers: dict[str, str] = {}
    variables: dict[str, str] = {}
    options: dict[str, object] = {}
    for key in form:
        if key.startswith("h:"):
            value = ", ".join(form.getlist(key))
            if "\r" in value or "\n" in value or not key[2:].strip():
                raise Rejected(400, f"'{key}' is not a valid header")
            headers[key[2:]] = value
        elif key.startswith("v:"):
            variables[key[2:]] = _single(form, key)
        elif key.startswith("o:") and key != "o:tag":
            values = form.getlist(key)
            options[key[2:]] = values[-1] if len(values) == 1 else values
        elif key == "template":
            options["template"] = _single(form, key)
    custom = header_value(headers, "X-Mailgun-Variables")
    if custom:
        try:
            extra = json.loads(custom)
        except ValueError:
            raise Rejected(400, "'h:X-Mailgun-Variables' is not a valid JSON") from None
        if isinstance(extra, dict):
            variables = {
                **{k: v if isinstance(v, str) else json.dumps(v) for k, v in extra.items()},
                **variables,
            }
    subject = _single(form, "subject")
    if "\r" in subject or "\n" in subject:
        raise Rejected(400, "'subject' is not a valid header")
    if recipient_variables:
        _refuse_line_breaks_in_header_values(subject, headers, recipient_variables)
    return Submission(
        domain=domain,
        sender=", ".join(senders),
        recipients=recipients,
        subject=subject,
        text=text,
        html=html,
        headers=headers,
        variables=variables,
        recipient_variables=recipient_variables,
        tags=form.getlist("o:tag"),
        options=options,
        recipient_variables_json=recipient_variables_json,
    )


def _refuse_line_breaks_in_header_values(subject: str, headers: dict[str, str], variables: dict) -> None:
    """A recipient variable that lands in a header must not smuggle in a line break (header
    injection); the placeholders used in the subject and headers are checked per recipient."""
    keys = {key for text in (subject, *headers.values()) for key in _PLACEHOLDER.findall(text) if key}
    if not keys:
        return
    for address, values in variables.items():
        for key in keys:
            value = values.get(key)
            if isinstance(value, str) and ("\r" in value or "\n" in value):
                raise Rejected(400, f"recipient variable '{key}' of {address} would break a header line")


def by_address(recipient_variables: Mapping[str, dict] | None) -> dict[str, dict] | None:
    """Recipient variables keyed by lower-cased address (addresses compare case-insensitively);
    None outside batch mode."""
    if recipient_variables is None:
        return None
    return {address.lower(): values for address, values in recipient_variables.items()}
