"""Signed, salted, expiring tokens for the links in subscribers' emails, one salt per purpose.

A token is a ``django.core.signing.TimestampSigner`` value: ``<uuid hex>.<timestamp>.<hmac>``.
The salt names the purpose, so a token made for one purpose (confirm, preferences,
unsubscribe) never verifies for another. Confirmation links expire after
``CONFIRMATION_MAX_AGE``; preferences and unsubscribe links travel in every email and live for
``SUBSCRIBER_LINK_MAX_AGE`` (a year by default).

Every digest carries these links for each recipient, so signing must be cheap: the signer below
prepares its HMAC once per purpose and secret instead of once per call (Django's own
``Signer`` derives the key and sets up the HMAC on every call), which keeps a link at a few
microseconds. The tokens it makes are byte-for-byte those of Django's ``TimestampSigner``.
"""

import base64
import hashlib
import time
import uuid

from django.conf import settings
from django.core import signing
from django.utils.encoding import force_bytes
from django.utils.translation import gettext as _

SEPARATOR = "."


class Purpose:
    """What a token is for; each purpose is its own signing salt. (Plain strings rather than an
    Enum: they are dictionary keys on the per-recipient path, and str hashing is cached.)"""

    CONFIRM = "confirm"
    PREFERENCES = "preferences"
    UNSUBSCRIBE = "unsubscribe"
    ALL = (CONFIRM, PREFERENCES, UNSUBSCRIBE)


class InvalidToken(Exception):
    """The link is not one we made for this purpose, or it has expired.

    ``expired`` tells the two apart, so the page can offer the right way forward ("sign up
    again" for an old confirmation link, "this link is broken" for anything else).
    """

    def __init__(self, message: str, *, expired: bool = False):
        super().__init__(message)
        self.expired = expired


class _PurposeSigner(signing.TimestampSigner):
    """A ``TimestampSigner`` that prepares its HMAC once per secret, not once per call.

    HMAC-SHA256 (RFC 2104) is sha256((k ^ opad) + sha256((k ^ ipad) + msg)); the two padded-key
    states are hashed once and copied per signature, which costs a fraction of ``hmac.new``.
    """

    def __init__(self, purpose: str):
        super().__init__(salt=f"subscribers.tokens.{purpose}", sep=SEPARATOR, algorithm="sha256")
        self._states: dict[str, tuple] = {}
        self._stamp = (-1, "")

    def _prepared(self, key: str) -> tuple:
        states = self._states.get(key)
        if states is None:
            # Exactly django.utils.crypto.salted_hmac: key = sha256(salt + "signer" + secret).
            derived = hashlib.sha256(force_bytes(self.salt + "signer") + force_bytes(key)).digest()
            padded = derived.ljust(64, b"\0")
            states = self._states[key] = (
                hashlib.sha256(bytes(b ^ 0x36 for b in padded)),
                hashlib.sha256(bytes(b ^ 0x5C for b in padded)),
            )
        return states

    def signature(self, value, key=None):
        inner_state, outer_state = self._prepared(key or self.key)
        inner = inner_state.copy()
        inner.update(force_bytes(value))
        outer = outer_state.copy()
        outer.update(inner.digest())
        return base64.urlsafe_b64encode(outer.digest()).rstrip(b"=").decode()

    def timestamp(self):
        now = int(time.time())
        if self._stamp[0] != now:  # one base62 encoding per second, not per recipient
            self._stamp = (now, signing.b62_encode(now))
        return self._stamp[1]


_signers: dict[tuple[str, str], _PurposeSigner] = {}


def _signer(purpose: str) -> _PurposeSigner:
    # Keyed by the secret too, so a rotated SECRET_KEY (or a test overriding it) takes effect.
    cache_key = (purpose, settings.SECRET_KEY)
    signer = _signers.get(cache_key)
    if signer is None:
        if purpose not in Purpose.ALL:
            raise ValueError(f"unknown token purpose {purpose!r}")
        signer = _signers[cache_key] = _PurposeSigner(purpose)
    return signer


def max_age(purpose: str) -> int:
    if purpose == Purpose.CONFIRM:
        return settings.CONFIRMATION_MAX_AGE
    return settings.SUBSCRIBER_LINK_MAX_AGE


def make_token(purpose: str, subscriber_uuid: uuid.UUID | str) -> str:
    """A token for ``purpose`` naming the subscriber with ``subscriber_uuid``."""
    if isinstance(subscriber_uuid, str):
        subscriber_uuid = uuid.UUID(subscriber_uuid)
    return _signer(purpose).sign(subscriber_uuid.hex)


def read_token(purpose: str, token: str) -> uuid.UUID:
    """The subscriber uuid in ``token``. Raises ``InvalidToken`` (``expired`` set when the
    signature is good but older than the purpose allows)."""
    if not isinstance(token, str) or len(token) > 200:
        raise InvalidToken(_("This link is not valid."))
    try:
        value = _signer(purpose).unsign(token, max_age=max_age(purpose))
    except signing.SignatureExpired as exc:
        raise InvalidToken(_("This link has expired."), expired=True) from exc
    except (signing.BadSignature, ValueError) as exc:
        raise InvalidToken(_("This link is not valid.")) from exc
    try:
        return uuid.UUID(hex=value)
    except ValueError as exc:  # signed by us but not a uuid: another kind of signed value
        raise InvalidToken(_("This link is not valid.")) from exc


# --- Absolute links, as they go out in emails ---------------------------------------------------
# Built by string formatting rather than reverse(): the delivery engine calls these once per
# recipient. tests/test_tokens.py checks they agree with the URLconf.


def confirm_url(subscriber_uuid: uuid.UUID | str) -> str:
    return f"{settings.SITE_URL}/confirm/{make_token(Purpose.CONFIRM, subscriber_uuid)}/"


def preferences_url(subscriber_uuid: uuid.UUID | str) -> str:
    return f"{settings.SITE_URL}/preferences/{make_token(Purpose.PREFERENCES, subscriber_uuid)}/"


def _digest_query(digest_id: int | None) -> str:
    return f"?d={int(digest_id)}" if digest_id is not None else ""


def unsubscribe_url(subscriber_uuid: uuid.UUID | str, digest_id: int | None = None) -> str:
    """The unsubscribe page (a button that POSTs). ``digest_id`` lets the unsubscribe be
    credited to the edition it came from."""
    token = make_token(Purpose.UNSUBSCRIBE, subscriber_uuid)
    return f"{settings.SITE_URL}/unsubscribe/{token}/{_digest_query(digest_id)}"


def one_click_url(subscriber_uuid: uuid.UUID | str, digest_id: int | None = None) -> str:
    """The RFC 8058 ``List-Unsubscribe`` target (POST ``List-Unsubscribe=One-Click``)."""
    token = make_token(Purpose.UNSUBSCRIBE, subscriber_uuid)
    return f"{settings.SITE_URL}/unsubscribe/{token}/one-click/{_digest_query(digest_id)}"


def recipient_links(subscriber_uuid: uuid.UUID | str, digest_id: int | None = None) -> dict[str, str]:
    """Every per-recipient link of a newsletter email, signing each purpose once:
    ``preferences_url``, ``unsubscribe_url`` and ``one_click_url``."""
    site = settings.SITE_URL
    unsubscribe = make_token(Purpose.UNSUBSCRIBE, subscriber_uuid)
    query = _digest_query(digest_id)
    return {
        "preferences_url": f"{site}/preferences/{make_token(Purpose.PREFERENCES, subscriber_uuid)}/",
        "unsubscribe_url": f"{site}/unsubscribe/{unsubscribe}/{query}",
        "one_click_url": f"{site}/unsubscribe/{unsubscribe}/one-click/{query}",
    }
