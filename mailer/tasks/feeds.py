"""Celery tasks: feeds."""
