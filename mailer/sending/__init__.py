"""The delivery engine's use cases: fan an edition out into the ledger, send its batches,
and let editors pause, resume and retry. See docs/delivery.md for the exactly-once policy."""

from mailer.sending.batches import BatchResult, Outcome, give_up, send_batch
from mailer.sending.control import (
    pause_edition,
    probe_provider,
    reconcile_uncertain,
    resume_edition,
    retry_failed,
    settle_cancelled,
    sweep,
)
from mailer.sending.errors import DeliveryError, ProviderOutage, TransientProviderError
from mailer.sending.fanout import FanoutResult, start_edition
from mailer.sending.progress import finish_if_complete

__all__ = [
    "BatchResult",
    "DeliveryError",
    "FanoutResult",
    "Outcome",
    "ProviderOutage",
    "TransientProviderError",
    "finish_if_complete",
    "give_up",
    "pause_edition",
    "probe_provider",
    "reconcile_uncertain",
    "resume_edition",
    "retry_failed",
    "send_batch",
    "settle_cancelled",
    "start_edition",
    "sweep",
]
