"""Reader pages and emails are translated; the publisher's language is LANGUAGE_CODE, and pages
follow the reader's browser among LANGUAGES. German ships with the project."""

import re

import pytest
from django.conf import settings
from django.utils import translation

from mailer.mjml import render_email
from subscribers import emails
from subscribers.models import Subscriber
from tests.factories import SubscriberFactory, TopicFactory
from tests.fixtures.worker import ROOT

PO = ROOT / "locale" / "de" / "LC_MESSAGES" / "django.po"


@pytest.mark.django_db
def test_the_sign_up_page_follows_the_readers_browser(client):
    TopicFactory(slug="sport", name="Sport")
    german = client.get("/", HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9").content.decode()
    assert "Unsere neuesten Artikel per E-Mail" in german
    assert "E-Mail-Adresse" in german and "Tägliche Übersicht" in german
    assert "Ich möchte den Newsletter von" in german  # the consent wording too
    english = client.get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Get our newest articles by email" in english and "Daily digest" in english


@pytest.mark.django_db
def test_an_invalid_address_is_explained_in_the_readers_language(client):
    response = client.post(
        "/subscribe/", {"email": "nicht-gültig", "frequency": "daily"}, HTTP_ACCEPT_LANGUAGE="de"
    )
    assert response.status_code == 400
    assert "gültige E-Mail-Adresse" in response.content.decode()


@pytest.mark.django_db
def test_emails_are_written_in_the_publishers_language(settings, local_provider):
    settings.LANGUAGE_CODE = "de"
    subscriber = SubscriberFactory(
        status=Subscriber.Status.PENDING, confirmed_at=None, email="anna@example.org"
    )
    translation.deactivate()  # as in a worker: no request picked a language, LANGUAGE_CODE applies
    assert emails.send_confirmation(subscriber.pk) == "sent"
    [message] = local_provider.messages(to="anna@example.org")
    assert message["subject"] == f"Bitte bestätigen Sie Ihr Abonnement von {settings.PUBLICATION_NAME}"
    assert "Jemand, hoffentlich Sie, möchte den Newsletter" in message["text"]
    assert "Der Link gilt 7 Tage." in message["text"]
    assert "Abonnement bestätigen" in message["html"]


def test_the_digest_footer_is_translated():
    context = {
        "publication_name": "Der Kurier",
        "articles": [
            {"title": "Titel", "url": "https://example.com/a", "excerpt_html": "", "excerpt_text": ""}
        ],
        "merge": {
            "preferences_url": "P",
            "unsubscribe_url": "U",
            "greeting": "Hallo",
            "greeting_html": "Hallo",
        },
        "subject": "Ausgabe",
    }
    with translation.override("de"):
        rendered = render_email("digest", context)
    assert "Einstellungen verwalten: P" in rendered.text and "Abbestellen: U" in rendered.text
    assert "Weiterlesen" in rendered.html


def _entries():
    text = PO.read_text(encoding="utf-8")
    for block in text.split("\n\n")[1:]:

        def field(name, block=block):
            match = re.search(rf'^{re.escape(name)} ((?:"[^\n]*"\n?)+)', block + "\n", re.M)
            return (
                "".join(line.strip()[1:-1] for line in match.group(1).strip().split("\n")) if match else None
            )

        yield field("msgid"), field("msgstr") or field("msgstr[0]"), field("msgstr[1]")


def test_every_german_translation_keeps_the_placeholders_and_markup():
    checked = 0
    for msgid, msgstr, plural in _entries():
        if msgid in ("Home",):  # the admin's own string; Django ships its translation
            continue
        assert msgstr, f"untranslated: {msgid}"
        placeholders = set(re.findall(r"%\(\w+\)[sd]", msgid))
        for translated in filter(None, (msgstr, plural)):
            assert set(re.findall(r"%\(\w+\)[sd]", translated)) == placeholders, msgid
            assert re.findall(r"</?\w+>", translated) == re.findall(r"</?\w+>", msgid), msgid
        checked += 1
    assert checked > 90


def test_the_compiled_catalogue_is_in_step_with_the_source():
    mo = PO.with_suffix(".mo")
    assert mo.exists(), "run django-admin compilemessages and commit the .mo"
    assert mo.stat().st_size > 1000
    assert "#, fuzzy" not in PO.read_text(encoding="utf-8")  # msgfmt leaves fuzzy entries out
    with translation.override("de"):
        for msgid, msgstr, _ in _entries():
            if msgid and msgstr and "%" not in msgid and msgid != "Home":
                assert translation.gettext(msgid) == msgstr.replace('\\"', '"'), msgid


def test_the_publishers_language_is_a_setting():
    assert settings.LANGUAGE_CODE == "en"  # the default; LANGUAGE_CODE=de in the environment
    assert "de" in dict(settings.LANGUAGES)


@pytest.mark.django_db
def test_the_digest_greeting_and_why_are_translated():
    import uuid

    from mailer.rendering import _why, recipient_merge_data
    from tests.factories import DigestFactory

    sport, politics = TopicFactory(slug="sport", name="Sport"), TopicFactory(slug="politik", name="Politik")
    digest = DigestFactory(frequency="weekly")
    with translation.override("de"):
        merge = recipient_merge_data(subscriber_uuid=uuid.uuid4(), name="Anna", digest_id=digest.pk)
        why = _why(digest, frozenset({sport.pk, politics.pk}))
    assert merge["greeting"] == "Hallo Anna,"
    assert why.startswith("Sie erhalten diese E-Mail, weil Sie den wöchentlichen Newsletter von")
    assert why.endswith(" und Sport abonniert haben.") or why.endswith(" und Politik abonniert haben.")
