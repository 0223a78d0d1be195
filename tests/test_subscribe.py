"""Sign-up on the page: validation, normalisation, double opt-in start, no enumeration, abuse."""

import json

import pytest
import redis
from django.test import Client
from django.utils import timezone

from subscribers import services
from subscribers.addresses import InvalidAddress, normalise_email
from subscribers.forms import consent_wording
from subscribers.models import ConsentRecord, Subscriber
from tests.factories import SubscriberFactory, TopicFactory
from tests.signups import queued_signups, queued_tasks, run_queued_signups

pytestmark = pytest.mark.django_db


def sign_up(client, django_capture_on_commit_callbacks, **data):
    """POST the page's form, then run the sign-up task the request queued (the confirmation it
    queues in turn goes to the real broker)."""
    data.setdefault("frequency", "daily")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/subscribe/", data, REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="Mozilla/5.0 test"
        )
        run_queued_signups()
    return response


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("  Anna@Example.ORG ", "anna@example.org"),
        ("anna@BÜCHER.example", "anna@xn--bcher-kva.example"),
        ("o'neil+news@sub.example.co.uk", "o'neil+news@sub.example.co.uk"),
    ],
)
def test_addresses_are_stored_in_one_spelling(raw, stored):
    assert normalise_email(raw) == stored


@pytest.mark.parametrize(
    "raw",
    [
        "anna@example.org\r\nBcc: victim@example.com",
        "anna\n@example.org",
        "a" * 250 + "@example.org",
        "anna@" + "b" * 64 + ".example",
        "not-an-address",
        "anna@",
        "ännä@example.org",
        "",
    ],
)
def test_unusable_addresses_are_refused(raw):
    with pytest.raises(InvalidAddress):
        normalise_email(raw)


def test_signup_page_offers_topics_frequency_consent_and_a_hidden_honeypot(client):
    TopicFactory(slug="sport", name="Sport")
    TopicFactory(slug="secret", name="Internal", is_public=False)
    page = client.get("/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Sport" in html and "Internal" not in html
    assert "Daily digest" in html and "Weekly digest" in html
    assert consent_wording() in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert 'class="hp" aria-hidden="true"' in html and 'name="website"' in html
    assert 'action="/subscribe/"' in html


def test_signup_stores_a_pending_subscriber_with_consent_and_queues_the_confirmation(
    client, django_capture_on_commit_callbacks
):
    sport, culture = TopicFactory(slug="sport"), TopicFactory(slug="culture")
    response = sign_up(
        client,
        django_capture_on_commit_callbacks,
        email=" Reader@Example.ORG",
        name="Ann",
        topics=[culture.pk, sport.pk],
        frequency="weekly",
    )
    assert response.status_code == 302 and response["Location"] == "/thanks/"
    subscriber = Subscriber.objects.get()
    assert subscriber.email == "reader@example.org"
    assert subscriber.status == Subscriber.Status.PENDING
    assert subscriber.frequency == "weekly" and subscriber.name == "Ann"
    assert subscriber.segment_key == ",".join(str(pk) for pk in sorted([sport.pk, culture.pk]))
    record = subscriber.consents.get()
    assert (record.action, record.source) == (ConsentRecord.Action.SUBSCRIBE, ConsentRecord.Source.FORM)
    assert record.ip_address == "203.0.113.7" and record.user_agent == "Mozilla/5.0 test"
    assert record.wording == consent_wording()
    assert queued_tasks() == [
        ("subscribers.tasks.process_signups", [], {}),  # queued by the request, run above
        ("subscribers.tasks.send_confirmations", [[subscriber.pk]], {}),  # the batch's confirmations
    ]
    assert "Check your inbox" in client.get("/thanks/").content.decode()


def test_signup_without_topics_means_every_topic(client, django_capture_on_commit_callbacks):
    sign_up(client, django_capture_on_commit_callbacks, email="all@example.org")
    assert Subscriber.objects.get().segment_key == ""


@pytest.mark.parametrize("status", ["pending", "active", "unsubscribed", "bounced", "complained"])
def test_known_addresses_get_the_same_answer_and_the_same_kind_of_work(
    client, django_capture_on_commit_callbacks, status
):
    new = sign_up(client, django_capture_on_commit_callbacks, email="new@example.org")
    SubscriberFactory(email="known@example.org", status=status)
    known = sign_up(client, django_capture_on_commit_callbacks, email="KNOWN@example.org")
    assert (known.status_code, known["Location"]) == (new.status_code, new["Location"])
    assert queued_tasks() == [
        ("subscribers.tasks.process_signups", [], {}),
        ("subscribers.tasks.send_confirmations", [[Subscriber.objects.get(email="new@example.org").pk]], {}),
        ("subscribers.tasks.process_signups", [], {}),
        (
            "subscribers.tasks.send_confirmations",
            [[Subscriber.objects.get(email="known@example.org").pk]],
            {},
        ),
    ]


def test_an_active_subscribers_choices_cannot_be_changed_by_signing_up_again(
    client, django_capture_on_commit_callbacks
):
    sport, politics = TopicFactory(slug="sport"), TopicFactory(slug="politics")
    subscriber = SubscriberFactory(email="known@example.org", frequency="daily")
    subscriber.set_topics([sport])
    sign_up(
        client,
        django_capture_on_commit_callbacks,
        email="known@example.org",
        topics=[politics.pk],
        frequency="weekly",
    )
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE and subscriber.frequency == "daily"
    assert list(subscriber.topics.all()) == [sport]
    # The request itself is on record (who asked, from where), without changing anything.
    assert subscriber.consents.get().action == ConsentRecord.Action.SUBSCRIBE


def test_signing_up_again_after_unsubscribing_starts_over_at_pending(
    client, django_capture_on_commit_callbacks
):
    subscriber = SubscriberFactory(email="back@example.org", status=Subscriber.Status.UNSUBSCRIBED)
    sign_up(client, django_capture_on_commit_callbacks, email="back@example.org", frequency="weekly")
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.PENDING
    assert subscriber.confirmed_at is None and subscriber.frequency == "weekly"
    assert subscriber.consents.get().action == ConsentRecord.Action.SUBSCRIBE


def test_a_filled_honeypot_gets_the_same_answer_and_stores_nothing(
    client, django_capture_on_commit_callbacks
):
    data = {"email": "bot@example.org", "website": "http://spam.example", "frequency": "daily"}
    response = client.post("/subscribe/", data)
    assert response.status_code == 302 and response["Location"] == "/thanks/"
    # Not even a sign-up task for the worker: nothing is queued, so nothing can be stored later.
    assert queued_tasks() == [] and queued_signups() == []
    assert not Subscriber.objects.exists() and not ConsentRecord.objects.exists()
    response = sign_up(client, django_capture_on_commit_callbacks, **data)
    assert response.status_code == 302 and response["Location"] == "/thanks/"
    assert not Subscriber.objects.exists() and not ConsentRecord.objects.exists()
    assert queued_tasks() == [] and queued_signups() == []


@pytest.mark.parametrize(
    ("data", "field_message"),
    [
        (
            {"email": "anna@example.org\r\nBcc: x@example.com"},
            "Email address: An email address cannot contain",
        ),
        ({"email": "a" * 255 + "@example.org"}, "Email address: An email address has at most 254"),
        ({"email": "nobody"}, "Email address: Enter a valid email address"),
        ({"email": ""}, "Email address: enter your email address"),
        ({"email": "ok@example.org", "name": "Ann\nBcc: x"}, "Name: cannot contain line breaks"),
        ({"email": "ok@example.org", "name": "x" * 101}, "Name: at most 100 characters"),
        ({"email": "ok@example.org", "topics": ["999999"]}, "Topics: 999999 is not one of the topics"),
        ({"email": "ok@example.org", "topics": ["1; DROP TABLE"]}, "Topics: “1; DROP TABLE” is not a topic"),
        ({"email": "ok@example.org", "frequency": "hourly"}, "How often: hourly is not one of the choices"),
    ],
)
def test_bad_input_is_refused_with_a_message_naming_the_field_and_nothing_is_written(
    client, django_capture_on_commit_callbacks, data, field_message
):
    response = sign_up(client, django_capture_on_commit_callbacks, **data)
    assert response.status_code == 400
    assert field_message in response.content.decode()
    assert not Subscriber.objects.exists() and not ConsentRecord.objects.exists()
    assert queued_tasks() == [] and queued_signups() == []


def test_input_is_escaped_when_shown_back(client, django_capture_on_commit_callbacks):
    response = sign_up(
        client, django_capture_on_commit_callbacks, email="<script>alert(1)</script>", name="<b>x</b>"
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def test_the_page_form_needs_its_csrf_token():
    client = Client(enforce_csrf_checks=True)
    response = client.post("/subscribe/", {"email": "a@example.org", "frequency": "daily"})
    assert response.status_code == 403
    assert not Subscriber.objects.exists()


def test_sign_ups_per_client_address_are_limited(client, settings, django_capture_on_commit_callbacks):
    settings.SIGNUP_RATE_LIMIT_PER_IP = 2
    for n in range(2):
        assert (
            sign_up(client, django_capture_on_commit_callbacks, email=f"r{n}@example.org").status_code == 302
        )
    refused = sign_up(client, django_capture_on_commit_callbacks, email="r3@example.org")
    assert refused.status_code == 429
    assert "Too many sign-ups from your network" in refused.content.decode()
    assert 0 < int(refused["Retry-After"]) <= settings.SIGNUP_RATE_LIMIT_WINDOW
    assert not Subscriber.objects.filter(email="r3@example.org").exists()
    other = client.post(
        "/subscribe/", {"email": "r4@example.org", "frequency": "daily"}, REMOTE_ADDR="198.51.100.1"
    )
    assert other.status_code == 302


def test_a_rate_limit_window_expires_on_its_own(client, settings):
    settings.SIGNUP_RATE_LIMIT_WINDOW = 60
    client.post("/subscribe/", {"email": "r@example.org", "frequency": "daily"}, REMOTE_ADDR="198.51.100.9")
    broker = redis.Redis.from_url(settings.REDIS_URL)
    [key] = broker.keys("newsletter:ratelimit:signup:198.51.100.9:*")
    assert broker.get(key) == b"1"
    assert 60 <= broker.ttl(key) <= 65  # the window and a few seconds, never forever


def test_the_readers_details_stay_out_of_the_broker(client, settings):
    client.post(
        "/api/subscribe",
        json.dumps({"email": "private.reader@example.org", "name": "Ann Private"}),
        content_type="application/json",
        REMOTE_ADDR="203.0.113.77",
    )
    # The sign-up waits in the inbox; the broker only holds the drain task, which carries nothing
    # of the reader (Flower and the worker's logs show tasks' arguments).
    [raw] = redis.Redis.from_url(settings.CELERY_BROKER_URL).lrange("celery", 0, -1)
    assert json.loads(raw)["headers"]["task"] == "subscribers.tasks.process_signups"
    for private in ("private.reader", "Ann Private", "203.0.113.77"):
        assert private.encode() not in raw
    [message] = queued_signups()
    assert (message["email"], message["consent"]["ip_address"]) == (
        "private.reader@example.org",
        "203.0.113.77",
    )


def test_the_rate_limit_believes_x_forwarded_for_only_behind_trusted_proxies(client, settings):
    settings.SIGNUP_RATE_LIMIT_PER_IP = 1
    data = {"email": "a@example.org", "frequency": "daily"}

    def post(forwarded):
        return client.post("/subscribe/", data, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)

    settings.TRUSTED_PROXY_COUNT = 0  # a client could forge the header: ignored
    assert post("198.51.100.1").status_code == 302
    assert post("198.51.100.2").status_code == 429
    settings.TRUSTED_PROXY_COUNT = 1  # our proxy appended the real client on the right
    assert post("1.1.1.1, 198.51.100.3").status_code == 302
    assert post("1.1.1.1, 198.51.100.3").status_code == 429
    assert post("1.1.1.1, 198.51.100.4").status_code == 302


def test_one_ipv6_network_shares_one_limit(client, settings):
    settings.SIGNUP_RATE_LIMIT_PER_IP = 1
    data = {"email": "a@example.org", "frequency": "daily"}
    assert client.post("/subscribe/", data, REMOTE_ADDR="2001:db8:1:2::10").status_code == 302
    # Another address in the same /64 is the same household or host.
    assert client.post("/subscribe/", data, REMOTE_ADDR="2001:db8:1:2::99").status_code == 429
    assert client.post("/subscribe/", data, REMOTE_ADDR="2001:db8:1:3::10").status_code == 302


def test_the_request_queues_the_validated_sign_up_and_the_worker_keeps_its_time(client):
    sport = TopicFactory(slug="sport")
    before = timezone.now()
    response = client.post(
        "/subscribe/",
        {"email": " Reader@Example.ORG", "name": " Ann ", "topics": [sport.pk], "frequency": "weekly"},
        REMOTE_ADDR="203.0.113.7",
        HTTP_USER_AGENT="Mozilla/5.0 test",
    )
    after = timezone.now()
    assert response.status_code == 302 and not Subscriber.objects.exists()
    [message] = queued_signups()
    signup = services.Signup.from_message(message)
    assert signup == services.Signup(
        email="reader@example.org",
        topic_ids=(sport.pk,),
        frequency="weekly",
        name="Ann",
        consent=services.Consent(
            source=ConsentRecord.Source.FORM,
            ip_address="203.0.113.7",
            user_agent="Mozilla/5.0 test",
            wording=consent_wording(),
            at=signup.consent.at,
        ),
    )
    assert before <= signup.consent.at <= after
    assert run_queued_signups() == 1
    subscriber = Subscriber.objects.get()
    assert subscriber.created_at == signup.consent.at == subscriber.consents.get().created_at


def test_a_topic_deleted_before_the_worker_runs_is_dropped_from_the_sign_up():
    sport, politics = TopicFactory(slug="sport"), TopicFactory(slug="politics")
    signup = services.Signup(
        email="late@example.org",
        topic_ids=(sport.pk, politics.pk),
        consent=services.Consent(source=ConsentRecord.Source.API, at=timezone.now()),
    )
    message = json.loads(json.dumps(signup.as_message()))  # what the broker carries
    politics.delete()
    subscriber = services.process_signup(services.Signup.from_message(message))
    assert list(subscriber.topics.all()) == [sport] and subscriber.segment_key == str(sport.pk)
    assert subscriber.status == Subscriber.Status.PENDING
