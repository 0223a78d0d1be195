"""Celery tasks: digests."""
