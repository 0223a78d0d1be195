"""A worker process started by the tests: the test settings, but DATABASE_URL is the test
database itself (the test run made it), so no TEST name is applied."""

from .base import *  # noqa: F403
from .test import PASSWORD_HASHERS, STORAGES  # noqa: F401

DEBUG = False
