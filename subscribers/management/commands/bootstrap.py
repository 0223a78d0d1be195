"""Prepare a fresh installation; safe to run on every start (``bin/run`` does).

- default topics, when there are none, with the feed category names that put articles in them;
- a feed Source for settings.FEED_URL, when set;
- on the first run, a superuser ``editor`` with a random password, printed once and written to
  ``var/admin-login.txt`` (mode 0600) so the run command can show it again.
"""

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from mailer.models import Source
from subscribers.models import Topic

DEFAULT_TOPICS = [
    ("news", "News", "The day's main stories.", "news\nlocal\nbreaking news\ntop stories"),
    ("politics", "Politics", "Council, parliament and elections.", "politics\nelections\ncouncil"),
    ("business", "Business", "Companies, jobs and the local economy.", "business\neconomy\nmoney"),
    ("sport", "Sport", "Results, fixtures and the clubs you follow.", "sport\nsports\nfootball"),
    ("culture", "Culture", "Arts, music, film, books and what's on.", "culture\narts\nentertainment"),
]
EDITOR_USERNAME = "editor"
LOGIN_FILE = "admin-login.txt"


class Command(BaseCommand):
    help = "Create default topics, the site's feed source and a first editor login (idempotent)."

    def handle(self, *args, **options):
        with transaction.atomic():
            topics = self._topics()
            source = self._feed_source()
        editor = self._editor()
        self.stdout.write(f"bootstrap: {topics}; {source}; {editor}")

    def _topics(self) -> str:
        if Topic.objects.exists():
            return f"{Topic.objects.count()} topics"
        Topic.objects.bulk_create(
            Topic(slug=slug, name=name, description=description, categories=categories, position=i)
            for i, (slug, name, description, categories) in enumerate(DEFAULT_TOPICS)
        )
        return f"created {len(DEFAULT_TOPICS)} default topics"

    def _feed_source(self) -> str:
        url = settings.FEED_URL
        if not url:
            return "no FEED_URL set"
        if Source.objects.filter(url=url).exists():  # url is not unique: never fail on duplicates
            return f"kept feed source {url}"
        Source.objects.create(url=url, name=f"{settings.PUBLICATION_NAME} feed", kind=Source.Kind.FEED)
        return f"created feed source {url}"

    def _editor(self) -> str:
        user_model = get_user_model()
        if user_model.objects.filter(is_superuser=True).exists():
            return "editor login exists"
        password = secrets.token_urlsafe(12)
        user_model.objects.create_superuser(username=EDITOR_USERNAME, email="", password=password)
        path = settings.VAR_DIR / LOGIN_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"username: {EDITOR_USERNAME}\npassword: {password}\n")
        os.chmod(path, 0o600)  # O_CREAT's mode does not apply to a file that already existed
        self.stdout.write(f"Admin login (shown once, also in {path}): {EDITOR_USERNAME} / {password}")
        return f"created superuser {EDITOR_USERNAME}"
