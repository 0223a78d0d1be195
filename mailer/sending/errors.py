"""What can go wrong when sending, as the delivery engine models it. Tasks catch these at the
edge and turn them into a retry, a pause or a recorded failure."""


class DeliveryError(Exception):
    """Base of the delivery engine's errors."""


class TransientProviderError(DeliveryError):
    """The provider could not take the batch now (5xx, 429, timeout, connection refused); the
    same call may succeed later. The batch is pending again, its deliveries untouched."""

    def __init__(self, reason: str, *, status_code: int | None = None, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code
        # Seconds the provider asked us to wait (its Retry-After header), if it said.
        self.retry_after = retry_after


class ProviderOutage(TransientProviderError):
    """Transient failures piled up past settings.PROVIDER_OUTAGE_THRESHOLD: the edition has been
    paused and a probe will resume it. Retrying the batch now would only burn its retries."""
