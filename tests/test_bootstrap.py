"""``manage.py bootstrap``: what a fresh installation needs, and nothing twice."""

import io
import stat

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from mailer.models import Source
from subscribers.models import Topic

pytestmark = pytest.mark.django_db


def run() -> str:
    out = io.StringIO()
    call_command("bootstrap", stdout=out)
    return out.getvalue()


def test_first_run_creates_topics_feed_and_an_editor_login(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.FEED_URL = "https://example.com/feed/"
    output = run()
    assert list(Topic.objects.values_list("name", flat=True)) == [
        "News",
        "Politics",
        "Business",
        "Sport",
        "Culture",
    ]
    assert all(t.category_names() for t in Topic.objects.all())
    source = Source.objects.get()
    assert (source.url, source.kind) == ("https://example.com/feed/", Source.Kind.FEED)
    login = tmp_path / "admin-login.txt"
    assert stat.S_IMODE(login.stat().st_mode) == 0o600
    password = login.read_text().split("password: ")[1].strip()
    assert password in output  # printed once
    user = get_user_model().objects.get(username="editor")
    assert user.is_superuser and user.check_password(password)
    assert output.strip().splitlines()[-1].startswith("bootstrap: created 5 default topics")


def test_running_again_changes_nothing_and_prints_no_password(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.FEED_URL = "https://example.com/feed/"
    run()
    Topic.objects.filter(slug="sport").delete()  # an editor's choice is kept
    second = run()
    assert Topic.objects.count() == 4 and Source.objects.count() == 1
    assert get_user_model().objects.count() == 1
    assert "password" not in second.lower()
    assert "4 topics" in second and "kept feed source" in second and "editor login exists" in second


def test_without_a_feed_url_no_source_is_made(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.FEED_URL = ""
    assert "no FEED_URL set" in run()
    assert not Source.objects.exists()
