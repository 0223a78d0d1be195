"""Celery tasks of the mailer: thin, they load ids and call services."""
