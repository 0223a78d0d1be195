"""Signals other apps listen to, so that subscribers never imports them."""

from django.dispatch import Signal

# Sent after a subscriber has been unsubscribed (their status changed to unsubscribed), by any
# route: page, one-click, admin, import. kwargs: ``subscriber``, ``digest_id`` (int or None: the
# edition the link came from) and ``at`` (the moment it took effect).
unsubscribed = Signal()
