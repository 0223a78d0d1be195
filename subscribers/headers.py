"""The unsubscribe headers every email to a subscriber carries (RFC 2369 / RFC 8058), built in
one place for the welcome email and for every edition's batch call."""

from django.conf import settings


def header_safe(value: str) -> str:
    """``value`` on one line: CR/LF and runs of white space become one space."""
    return " ".join(value.replace("\r", " ").replace("\n", " ").split())


def mailto_suffix() -> str:
    """The part of List-Unsubscribe every recipient shares: the mailto target, when configured."""
    if not settings.LIST_UNSUBSCRIBE_MAILTO:
        return ""
    return f", <mailto:{header_safe(settings.LIST_UNSUBSCRIBE_MAILTO)}?subject=unsubscribe>"


def list_unsubscribe(one_click_url: str, suffix: str | None = None) -> str:
    """List-Unsubscribe: the recipient's own one-click URL, and the mailto address when one is
    configured (pass ``suffix`` from ``mailto_suffix()`` to build that once per batch)."""
    return f"<{one_click_url}>{mailto_suffix() if suffix is None else suffix}"
