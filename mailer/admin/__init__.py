"""The editors' admin, one module per screen family."""

from mailer.admin import articles, deliveries, digests  # noqa: F401
