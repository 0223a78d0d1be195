"""The preferences page reached from every email."""

import pytest
from django.test import Client

from subscribers import tokens
from subscribers.models import ConsentRecord
from tests.factories import SubscriberFactory, TopicFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def topics():
    return [TopicFactory(slug=s, name=s.title()) for s in ("news", "sport", "culture")]


def url(subscriber) -> str:
    return f"/preferences/{tokens.make_token('preferences', subscriber.uuid)}/"


def test_the_page_shows_the_current_choices(client, topics):
    subscriber = SubscriberFactory(email="reader@example.org", name="Ann", frequency="weekly")
    subscriber.set_topics([topics[1]])
    page = client.get(url(subscriber))
    html = page.content.decode()
    assert page.status_code == 200
    assert "reader@example.org" in html and 'value="Ann"' in html
    assert f'value="{topics[1].pk}"' in html
    checked = html.split(f'value="{topics[1].pk}"')[1].split(">")[0]
    assert "checked" in checked
    assert 'value="weekly"' in html and "Download my data" in html and "Erase my data" in html


def test_saving_replaces_topics_frequency_and_name_and_records_the_change(client, topics):
    subscriber = SubscriberFactory(frequency="daily")
    subscriber.set_topics([topics[0]])
    response = client.post(
        url(subscriber),
        {"topics": [topics[2].pk, topics[1].pk], "frequency": "instant", "name": " Bo "},
        REMOTE_ADDR="198.51.100.5",
    )
    assert response.status_code == 302 and response["Location"].endswith("?saved=1")
    subscriber.refresh_from_db()
    assert set(subscriber.topics.all()) == {topics[1], topics[2]}
    assert subscriber.segment_key == ",".join(
        str(t.pk) for t in sorted([topics[1], topics[2]], key=lambda t: t.pk)
    )
    assert (subscriber.frequency, subscriber.name) == ("instant", "Bo")
    record = subscriber.consents.get()
    assert record.action == ConsentRecord.Action.CHANGE and record.source == ConsentRecord.Source.EMAIL
    assert "Culture" in record.wording and "Sport" in record.wording and record.ip_address == "198.51.100.5"
    assert "Your preferences are saved" in client.get(response["Location"]).content.decode()


def test_choosing_no_topic_means_every_topic(client, topics):
    subscriber = SubscriberFactory()
    subscriber.set_topics(topics[:2])
    client.post(url(subscriber), {"frequency": "daily"})
    subscriber.refresh_from_db()
    assert subscriber.segment_key == "" and not subscriber.topics.exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"topics": ["987654"], "frequency": "daily"}, "987654 is not one of the topics"),
        ({"frequency": "sometimes"}, "sometimes is not one of the choices"),
        ({"frequency": "daily", "name": "a\r\nb"}, "cannot contain line breaks"),
    ],
)
def test_bad_choices_are_refused_and_nothing_changes(client, topics, data, message):
    subscriber = SubscriberFactory(frequency="weekly")
    subscriber.set_topics([topics[0]])
    response = client.post(url(subscriber), data)
    assert response.status_code == 400 and message in response.content.decode()
    subscriber.refresh_from_db()
    assert subscriber.frequency == "weekly" and list(subscriber.topics.all()) == [topics[0]]
    assert not subscriber.consents.exists()


def test_saving_needs_the_pages_csrf_token(topics):
    subscriber = SubscriberFactory(frequency="weekly")
    response = Client(enforce_csrf_checks=True).post(url(subscriber), {"frequency": "daily"})
    assert response.status_code == 403
    subscriber.refresh_from_db()
    assert subscriber.frequency == "weekly"


def test_preferences_never_reactivate_an_unsubscribed_reader(client):
    subscriber = SubscriberFactory(status="unsubscribed")
    client.post(url(subscriber), {"frequency": "daily"})
    subscriber.refresh_from_db()
    assert subscriber.status == "unsubscribed"


def test_a_token_for_another_purpose_or_a_broken_one_is_refused(client):
    subscriber = SubscriberFactory()
    for token in [tokens.make_token("unsubscribe", subscriber.uuid), "abc", "x" * 300]:
        response = client.get(f"/preferences/{token}/")
        assert response.status_code == 400 and "This link does not work" in response.content.decode()


def test_topics_an_editor_set_that_readers_are_not_offered_are_kept(client, topics):
    internal = TopicFactory(slug="staff", name="Staff picks", is_public=False)
    subscriber = SubscriberFactory()
    subscriber.set_topics([topics[0], internal])
    assert "Staff picks" not in client.get(url(subscriber)).content.decode()
    client.post(url(subscriber), {"topics": [topics[1].pk], "frequency": "daily"})
    subscriber.refresh_from_db()
    assert set(subscriber.topics.all()) == {topics[1], internal}
    assert subscriber.segment_key == ",".join(str(pk) for pk in sorted([topics[1].pk, internal.pk]))
