"""The editors' subscriber and topic screens."""

import pytest

from subscribers.models import ConsentRecord, Subscriber
from tests.factories import SubscriberFactory, TopicFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def editor_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("ed", password="pw-for-tests")
    client.force_login(user)
    return client


def test_search_and_filters(editor_client):
    sport = TopicFactory(slug="sport", name="Sport")
    ann = SubscriberFactory(email="ann@example.org", frequency="weekly")
    ann.set_topics([sport])
    SubscriberFactory(email="bob@example.org", status="pending")
    html = editor_client.get("/admin/subscribers/subscriber/", {"q": "ann@"}).content.decode()
    assert "ann@example.org" in html and "bob@example.org" not in html
    for query in ({"status__exact": "pending"}, {"frequency__exact": "daily"}):
        html = editor_client.get("/admin/subscribers/subscriber/", query).content.decode()
        assert "bob@example.org" in html and "ann@example.org" not in html
    html = editor_client.get(
        "/admin/subscribers/subscriber/", {"topics__id__exact": sport.pk}
    ).content.decode()
    assert "ann@example.org" in html and "bob@example.org" not in html


def test_the_change_page_shows_consent_records_read_only_and_why_a_bounced_address_is_not_mailed(
    editor_client,
):
    subscriber = SubscriberFactory(status="bounced", suppressed_reason="550 mailbox does not exist")
    ConsentRecord.objects.create(
        subscriber=subscriber, action="subscribe", source="form", wording="I agree <b>"
    )
    html = editor_client.get(f"/admin/subscribers/subscriber/{subscriber.pk}/change/").content.decode()
    assert "I agree &lt;b&gt;" in html
    assert "Not mailed" in html and "550 mailbox does not exist" in html
    assert 'name="consents-0-wording"' not in html  # not editable


def test_editing_topics_in_the_admin_keeps_the_segment_key(editor_client):
    sport, news = TopicFactory(slug="sport"), TopicFactory(slug="news")
    subscriber = SubscriberFactory(email="ann@example.org")
    response = editor_client.post(
        f"/admin/subscribers/subscriber/{subscriber.pk}/change/",
        {
            "email": "ann@example.org",
            "name": "",
            "frequency": "daily",
            "topics": [news.pk, sport.pk],
            "language": "",
            "consents-TOTAL_FORMS": "0",
            "consents-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    subscriber.refresh_from_db()
    assert subscriber.segment_key == ",".join(str(pk) for pk in sorted([sport.pk, news.pk]))
    record = subscriber.consents.get()
    assert (record.action, record.source) == (
        "change",
        "admin",
    ) and "Changed by an editor (ed)" in record.wording


def test_actions_resend_confirmation_and_unsubscribe(editor_client, django_capture_on_commit_callbacks):
    pending = SubscriberFactory(status="pending", confirmed_at=None)
    active = SubscriberFactory()
    with django_capture_on_commit_callbacks() as queued:
        response = editor_client.post(
            "/admin/subscribers/subscriber/",
            {"action": "resend_confirmation", "_selected_action": [pending.pk, active.pk]},
            follow=True,
        )
    assert "Queued 1 confirmation" in response.content.decode() and len(queued) == 1
    response = editor_client.post(
        "/admin/subscribers/subscriber/",
        {"action": "unsubscribe_selected", "_selected_action": [pending.pk, active.pk]},
        follow=True,
    )
    assert "Unsubscribed 2 subscriber(s)" in response.content.decode()
    assert set(Subscriber.objects.values_list("status", flat=True)) == {"unsubscribed"}
    assert ConsentRecord.objects.filter(action="unsubscribe", source="admin").count() == 2


def test_topics_screen_counts_subscribers(editor_client):
    sport = TopicFactory(slug="sport", name="Sport")
    SubscriberFactory().set_topics([sport])
    html = editor_client.get("/admin/subscribers/topic/").content.decode()
    assert "Sport" in html and ">1<" in html


def test_addresses_typed_in_the_admin_are_normalised_and_stay_unique(editor_client):
    SubscriberFactory(email="taken@example.org")

    def add(email):
        return editor_client.post(
            "/admin/subscribers/subscriber/add/",
            {
                "email": email,
                "name": "",
                "frequency": "daily",
                "language": "",
                "consents-TOTAL_FORMS": "0",
                "consents-INITIAL_FORMS": "0",
            },
        )

    assert add(" New@BÜCHER.example ").status_code == 302
    added = Subscriber.objects.get(email="new@xn--bcher-kva.example")
    assert added.status == Subscriber.Status.PENDING
    assert added.consents.get().source == ConsentRecord.Source.ADMIN
    refused = add("TAKEN@example.org")
    assert refused.status_code == 200 and "already exists" in refused.content.decode()
