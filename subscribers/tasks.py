"""Celery tasks of the subscribers app: thin, they load ids and call services."""
