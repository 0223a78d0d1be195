"""Provider feedback: Mailgun tracking webhooks through Anymail's view update deliveries and
subscribers; bad authentication is refused; unknown messages are accepted and ignored."""

import base64
import hashlib
import hmac
import json
import time
import uuid

import pytest

from mailer import sending
from mailer.models import Delivery
from mailer.selectors import edition_figures
from subscribers import services
from subscribers.models import ConsentRecord, Subscriber
from tests.test_delivery_fanout import add_subscribers, make_edition
from tests.test_send_batch import fan_out, send_all

WEBHOOK = "/anymail/mailgun/tracking/"


def basic_auth(credentials: str = "local:webhook-secret") -> dict:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(credentials.encode()).decode()}


def mailgun_payload(
    event: str, recipient: str, *, message_id: str = "", metadata=None, signing_key=None, **extra
):
    """A Mailgun webhook body as Mailgun signs it."""
    timestamp, token = str(int(time.time())), uuid.uuid4().hex
    key = (signing_key or "local-webhook-signing-key").encode()
    signature = hmac.new(key, f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    data = {
        "event": event,
        "timestamp": time.time(),
        "id": uuid.uuid4().hex,
        "recipient": recipient,
        "user-variables": metadata or {},
        "message": {"headers": {"message-id": message_id.strip("<>")}},
        **extra,
    }
    return {"signature": {"timestamp": timestamp, "token": token, "signature": signature}, "event-data": data}


def post(client, payload, **headers):
    return client.post(
        WEBHOOK, data=json.dumps(payload), content_type="application/json", **(headers or basic_auth())
    )


@pytest.fixture
def sent_edition(local_provider, settings):
    settings.PROVIDER_BATCH_SIZE = 50
    digest = fan_out(6)
    send_all(digest)
    return digest


def delivery_of(digest, email) -> Delivery:
    return Delivery.objects.select_related("subscriber").get(digest=digest, subscriber__email=email)


@pytest.mark.django_db(transaction=True)
def test_provider_webhooks_change_deliveries_and_subscribers(live_server, local_provider, settings):
    settings.PROVIDER_BATCH_SIZE = 50
    settings.PROVIDER_HONOURS_IDEMPOTENCY_KEY = True
    local_provider.configure(webhook_url=f"{live_server.url}{WEBHOOK}", webhook_auth="local:webhook-secret")
    add_subscribers(6)
    for address, mark in [
        ("reader0@example.org", "bounce"),
        ("reader1@example.org", "complain"),
        ("reader2@example.org", "click"),
        ("reader3@example.org", "unsubscribe"),
        ("reader4@example.org", "soft-bounce"),
    ]:
        local_provider.mark(address, mark)
    digest = make_edition()
    sending.start_edition(digest.pk)
    for batch in digest.batches.all():
        sending.send_batch(batch.pk)
    stats = local_provider.wait_for_webhooks(timeout=20)
    assert stats["webhooks_sent"] >= 6 and stats["webhooks_failed"] == 0

    bounced = delivery_of(digest, "reader0@example.org")
    assert bounced.bounced_at and bounced.subscriber.status == Subscriber.Status.BOUNCED
    assert bounced.subscriber.suppressed_reason.startswith("Hard bounce: 5.1.1")
    complained = delivery_of(digest, "reader1@example.org")
    assert complained.complained_at and complained.subscriber.status == Subscriber.Status.COMPLAINED
    clicked = delivery_of(digest, "reader2@example.org")
    assert clicked.delivered_at and clicked.opened_at and clicked.clicked_at
    assert clicked.subscriber.status == Subscriber.Status.ACTIVE
    left = delivery_of(digest, "reader3@example.org")
    assert left.unsubscribed_at and left.subscriber.status == Subscriber.Status.UNSUBSCRIBED
    assert ConsentRecord.objects.filter(
        subscriber=left.subscriber,
        action=ConsentRecord.Action.UNSUBSCRIBE,
        source=ConsentRecord.Source.PROVIDER,
    ).exists()
    soft = delivery_of(digest, "reader4@example.org")
    assert soft.subscriber.soft_bounces == 1 and soft.subscriber.status == Subscriber.Status.ACTIVE
    assert delivery_of(digest, "reader5@example.org").delivered_at
    figures = edition_figures(digest.pk)
    assert (figures["bounced"], figures["complained"], figures["clicked"], figures["unsubscribed"]) == (
        1,
        1,
        1,
        1,
    )
    assert figures["delivered"] == 4  # everyone but the two bounces (hard and soft)


@pytest.mark.django_db
def test_webhook_with_bad_auth_is_refused_and_changes_nothing(client, sent_edition):
    delivery = delivery_of(sent_edition, "reader0@example.org")
    payload = mailgun_payload("complained", delivery.subscriber.email, message_id=delivery.message_id)

    assert post(client, payload, **basic_auth("local:wrong")).status_code == 400
    assert post(client, payload, HTTP_X_NOTHING="1").status_code == 400
    forged = mailgun_payload(
        "complained", delivery.subscriber.email, message_id=delivery.message_id, signing_key="guess"
    )
    assert post(client, forged).status_code == 400

    delivery.refresh_from_db()
    delivery.subscriber.refresh_from_db()
    assert delivery.complained_at is None and delivery.subscriber.status == Subscriber.Status.ACTIVE


@pytest.mark.django_db
def test_events_for_unknown_messages_are_accepted_and_ignored(client, sent_edition):
    for payload in [
        mailgun_payload("delivered", "stranger@example.org", message_id="<nobody@example.com>"),
        mailgun_payload(
            "failed", "reader0@example.org", message_id="<other@example.com>", severity="permanent"
        ),
        mailgun_payload("complained", "reader0@example.org", metadata={"delivery_id": "999999"}),
        mailgun_payload("complained", "reader0@example.org", metadata={"delivery_id": "not a number"}),
        mailgun_payload("complained", "", metadata={}),
    ]:
        assert post(client, payload).status_code == 200
    assert not Subscriber.objects.exclude(status=Subscriber.Status.ACTIVE).exists()
    assert not Delivery.objects.filter(delivered_at__isnull=False).exists()


@pytest.mark.django_db
def test_delivery_id_in_metadata_must_match_the_recipient(client, sent_edition):
    victim = delivery_of(sent_edition, "reader0@example.org")
    payload = mailgun_payload("complained", "reader1@example.org", metadata={"delivery_id": str(victim.pk)})
    assert post(client, payload).status_code == 200
    victim.subscriber.refresh_from_db()
    assert victim.subscriber.status == Subscriber.Status.ACTIVE


@pytest.mark.django_db
def test_soft_bounces_suppress_at_the_limit_and_a_delivery_resets_the_count(client, sent_edition, settings):
    settings.SOFT_BOUNCE_LIMIT = 3
    delivery = delivery_of(sent_edition, "reader2@example.org")

    def soft_bounce():
        payload = mailgun_payload(
            "failed",
            delivery.subscriber.email,
            message_id=delivery.message_id,
            severity="temporary",
            reason="generic",
            **{"delivery-status": {"code": 452, "message": "4.2.2 Mailbox full"}},
        )
        assert post(client, payload).status_code == 200

    soft_bounce()
    soft_bounce()
    assert (
        post(
            client, mailgun_payload("delivered", delivery.subscriber.email, message_id=delivery.message_id)
        ).status_code
        == 200
    )
    delivery.subscriber.refresh_from_db()
    assert delivery.subscriber.soft_bounces == 0

    soft_bounce()
    soft_bounce()
    delivery.subscriber.refresh_from_db()
    assert delivery.subscriber.status == Subscriber.Status.ACTIVE and delivery.subscriber.soft_bounces == 2
    soft_bounce()
    delivery.subscriber.refresh_from_db()
    assert delivery.subscriber.status == Subscriber.Status.BOUNCED
    assert delivery.subscriber.suppressed_reason.startswith("3 soft bounces in a row: 4.2.2 Mailbox full")


@pytest.mark.django_db
def test_the_same_event_posted_twice_counts_once(client, sent_edition):
    delivery = delivery_of(sent_edition, "reader3@example.org")
    payload = mailgun_payload(
        "failed",
        delivery.subscriber.email,
        message_id=delivery.message_id,
        severity="temporary",
        reason="generic",
    )
    assert post(client, payload).status_code == 200
    assert post(client, payload).status_code == 200
    delivery.subscriber.refresh_from_db()
    assert delivery.subscriber.soft_bounces == 1


@pytest.mark.django_db
def test_an_unsubscribe_from_an_editions_link_is_credited_to_it(sent_edition):
    delivery = delivery_of(sent_edition, "reader5@example.org")
    services.unsubscribe(
        delivery.subscriber,
        consent=services.Consent(source=ConsentRecord.Source.EMAIL),
        digest_id=sent_edition.pk,
    )
    delivery.refresh_from_db()
    assert delivery.unsubscribed_at is not None
