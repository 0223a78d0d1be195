"""Email addresses as we store them: one spelling per mailbox.

- Surrounding whitespace is dropped; any control character (CR, LF, NUL, ...) makes the address
  invalid instead of being cleaned away, since it is a header-injection attempt, not a typo.
- The domain is lower-cased and internationalised domains are stored in their ASCII (punycode)
  form, which is what mail servers route on: ``anna@bücher.example`` is ``anna@xn--bcher-kva.example``.
- The local part is lower-cased too. RFC 5321 allows a mailbox to be case-sensitive, but no
  mainstream provider makes ``Anna`` and ``anna`` different people, while keeping case would
  let one reader hold two subscriptions and let anyone step around the one-confirmation-per-
  address limit by changing case. Non-ASCII local parts (SMTPUTF8) are refused: most
  providers cannot send to them.
- At most 254 characters (RFC 5321 path limit), measured on the stored form.
"""

import functools
import unicodedata

import idna
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext as _

MAX_LENGTH = 254


class InvalidAddress(ValueError):
    """The input is not an address we can store and mail; the message says why, for the reader."""


def _too_long() -> str:
    return _("An email address has at most %(limit)d characters.") % {"limit": MAX_LENGTH}


@functools.lru_cache(maxsize=4096)
def _ascii_domain(domain: str) -> str:
    # IDNA encoding is most of the cost of normalising; a CSV import of 100k addresses has few
    # distinct domains, so they are encoded once each (errors are raised, never cached).
    return idna.encode(domain, uts46=True).decode("ascii")


def normalise_email(raw: str) -> str:
    """The stored form of ``raw`` (see the module docstring). Raises ``InvalidAddress``."""
    if not isinstance(raw, str):
        raise InvalidAddress(_("Enter your email address."))
    if len(raw) > 4 * MAX_LENGTH:
        raise InvalidAddress(_too_long())
    value = raw.strip()
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise InvalidAddress(_("An email address cannot contain line breaks or control characters."))
    if not value:
        raise InvalidAddress(_("Enter your email address."))
    if len(value) > MAX_LENGTH:
        raise InvalidAddress(_too_long())
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        raise InvalidAddress(_("Enter a valid email address, like name@example.com."))
    if not local.isascii():
        raise InvalidAddress(_("Addresses with accented letters before the @ cannot be used, sorry."))
    try:
        ascii_domain = _ascii_domain(domain)
    except (UnicodeError, ValueError) as exc:  # idna.IDNAError is a UnicodeError
        raise InvalidAddress(_("The part after the @ is not a valid domain name.")) from exc
    email = f"{local.lower()}@{ascii_domain.lower()}"
    if len(email) > MAX_LENGTH:
        raise InvalidAddress(_too_long())
    try:
        validate_email(email)
    except ValidationError as exc:
        raise InvalidAddress(_("Enter a valid email address, like name@example.com.")) from exc
    return email
