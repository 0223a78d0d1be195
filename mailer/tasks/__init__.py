"""Celery tasks of the mailer, one module per step of the flow. Tasks are thin: they load ids,
call a service and decide about retries. Importing them here registers them with the worker."""

from mailer.tasks import delivery, digests, feeds  # noqa: F401
