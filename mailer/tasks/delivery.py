"""Celery tasks: delivery."""
