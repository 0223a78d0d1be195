"""Sending batches through Anymail's real Mailgun backend to the local provider: one call per
batch, per-recipient headers, exactly-once accounting, faults, pause/resume, retry failed."""

from datetime import timedelta

import pytest
from django.utils import timezone

from mailer import selectors, sending
from mailer.models import Batch, Delivery, Digest
from mailer.sending import Outcome
from subscribers.models import Subscriber
from subscribers.tokens import Purpose, read_token
from tests.factories import TopicFactory
from tests.test_delivery_fanout import add_subscribers, make_edition

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _small_batches(settings):
    settings.PROVIDER_BATCH_SIZE = 50
    settings.PROVIDER_HONOURS_IDEMPOTENCY_KEY = True
    settings.PROVIDER_OUTAGE_THRESHOLD = 5


def fan_out(count: int, **fields) -> Digest:
    add_subscribers(count, **fields)
    digest = make_edition()
    sending.start_edition(digest.pk)
    return digest


def batch_ids(digest: Digest) -> list[int]:
    return list(Batch.objects.filter(digest=digest).order_by("number").values_list("id", flat=True))


def send_all(digest: Digest) -> list[Outcome]:
    return [sending.send_batch(pk).outcome for pk in batch_ids(digest)]


def assert_counts_add_up(digest_id: int) -> dict:
    figures = selectors.edition_figures(digest_id)
    assert figures["pending"] + figures["sent"] + figures["failed"] + figures["skipped"] == figures["total"]
    return figures


def test_edition_reaches_each_recipient_once_in_one_call_per_batch(local_provider):
    digest = fan_out(120)

    assert send_all(digest) == [Outcome.SENT] * 3

    stats = local_provider.stats()
    assert stats["calls"] == 3 and stats["messages"] == 120 and stats["duplicates"] == 0
    digest.refresh_from_db()
    assert digest.status == Digest.Status.SENT and digest.finished_at
    deliveries = Delivery.objects.filter(digest=digest)
    assert deliveries.filter(status=Delivery.Status.SENT).count() == 120
    assert not deliveries.filter(message_id="").exists()
    assert set(Batch.objects.filter(digest=digest).values_list("status", flat=True)) == {Batch.Status.SENT}
    figures = assert_counts_add_up(digest.pk)
    assert figures["sent"] == 120 and figures["rate_per_second"] > 0


def test_every_message_carries_its_recipients_own_unsubscribe_headers(local_provider, settings):
    settings.LIST_UNSUBSCRIBE_MAILTO = "unsubscribe@example.com"
    digest = fan_out(3)
    send_all(digest)
    reader = Subscriber.objects.get(email="reader1@example.org")

    [message] = local_provider.messages(to=reader.email)
    headers = {k.lower(): v for k, v in message["headers"].items()}
    one_click, mailto = [part.strip(" <>") for part in headers["list-unsubscribe"].split(",")]
    token = one_click.split("/unsubscribe/")[1].split("/")[0]
    assert read_token(Purpose.UNSUBSCRIBE, token) == reader.uuid
    assert (
        one_click.startswith(f"{settings.SITE_URL}/unsubscribe/") and f"one-click/?d={digest.pk}" in one_click
    )
    assert mailto == "mailto:unsubscribe@example.com?subject=unsubscribe"
    assert headers["list-unsubscribe-post"] == "List-Unsubscribe=One-Click"
    assert settings.LIST_ID in headers["list-id"]
    assert headers["x-idempotency-key"] == str(Batch.objects.get(digest=digest).idempotency_key)
    # Both parts, personalised for this reader: no placeholder left, their own links.
    assert message["text"].strip() and message["html"].strip()
    assert "%recipient" not in message["text"] and "%recipient" not in message["html"]
    assert f"/unsubscribe/{token}/" in message["text"]
    others = [m for m in local_provider.messages() if m["recipient"] != reader.email]
    assert all(token not in m["headers"].get("List-Unsubscribe", "") for m in others)


def test_a_batch_sent_again_sends_nothing(local_provider):
    digest = fan_out(10)
    [batch_id] = batch_ids(digest)
    assert sending.send_batch(batch_id).outcome == Outcome.SENT
    assert sending.send_batch(batch_id).outcome == Outcome.DONE
    assert local_provider.stats()["calls"] == 1


def test_accepted_then_failed_call_is_replayed_with_its_key_and_not_duplicated(local_provider):
    digest = fan_out(20)
    [batch_id] = batch_ids(digest)
    local_provider.set_faults(accept_then_fail_rate=1.0)
    with pytest.raises(sending.TransientProviderError):
        sending.send_batch(batch_id)
    assert local_provider.stats()["messages"] == 20  # the provider took them, then answered 500
    assert Batch.objects.get(pk=batch_id).status == Batch.Status.PENDING
    assert not Delivery.objects.filter(digest=digest, status=Delivery.Status.SENT).exists()

    local_provider.clear_faults()
    assert sending.send_batch(batch_id).outcome == Outcome.SENT

    stats = local_provider.stats()
    assert stats["messages"] == 20 and stats["duplicates"] == 0 and stats["idempotent_replays"] == 1
    assert Delivery.objects.filter(digest=digest, status=Delivery.Status.SENT).count() == 20


def test_batch_left_submitting_by_a_dead_worker_is_taken_over_after_its_lease(local_provider, settings):
    digest = fan_out(5)
    [batch_id] = batch_ids(digest)
    Batch.objects.filter(pk=batch_id).update(status=Batch.Status.SUBMITTING, submitted_at=timezone.now())
    result = sending.send_batch(batch_id)
    assert result.outcome == Outcome.BUSY and result.retry_in > 1
    assert local_provider.stats()["calls"] == 0

    Batch.objects.filter(pk=batch_id).update(
        submitted_at=timezone.now() - timedelta(seconds=settings.DELIVERY_BATCH_LEASE + 1)
    )
    assert sending.send_batch(batch_id).outcome == Outcome.SENT
    assert Delivery.objects.filter(digest=digest, status=Delivery.Status.SENT).count() == 5


def test_without_idempotency_a_stale_submission_is_uncertain_and_reconciled_from_events(
    local_provider, settings
):
    settings.PROVIDER_HONOURS_IDEMPOTENCY_KEY = False
    digest = fan_out(4)
    [batch_id] = batch_ids(digest)
    long_ago = timezone.now() - timedelta(hours=1)
    Batch.objects.filter(pk=batch_id).update(status=Batch.Status.SUBMITTING, submitted_at=long_ago)

    assert sending.send_batch(batch_id).outcome == Outcome.UNCERTAIN
    assert local_provider.stats()["calls"] == 0  # never resent blindly
    assert Batch.objects.get(pk=batch_id).status == Batch.Status.UNCERTAIN

    # The provider's event for one recipient shows its message went out.
    from anymail.signals import AnymailTrackingEvent

    from mailer import feedback

    first = Delivery.objects.filter(digest=digest).order_by("id").select_related("subscriber").first()
    event = AnymailTrackingEvent(
        event_type="delivered",
        recipient=first.subscriber.email,
        message_id="<accepted@example.com>",
        metadata={"delivery_id": str(first.pk)},
        event_id="evt-1",
    )
    assert feedback.record_event(event) == feedback.Result.RECORDED
    sending.reconcile_uncertain(older_than=timedelta(0))

    first.refresh_from_db()
    assert first.status == Delivery.Status.SENT and first.delivered_at
    rest = Delivery.objects.filter(digest=digest).exclude(pk=first.pk)
    assert set(rest.values_list("status", flat=True)) == {Delivery.Status.FAILED}
    assert all(e.startswith("Uncertain") for e in rest.values_list("error", flat=True))
    digest.refresh_from_db()
    assert digest.status == Digest.Status.SENT
    assert assert_counts_add_up(digest.pk)["failed"] == 3


def test_permanent_rejection_fails_the_deliveries_with_the_providers_reason(local_provider):
    digest = fan_out(6)
    [batch_id] = batch_ids(digest)
    local_provider.set_faults(error_rate=1.0, status_codes=[400])
    assert sending.send_batch(batch_id).outcome == Outcome.FAILED
    errors = set(Delivery.objects.filter(digest=digest).values_list("status", "error"))
    assert len(errors) == 1
    status, error = errors.pop()
    assert status == Delivery.Status.FAILED and error.startswith("Refused by the provider: HTTP 400")
    digest.refresh_from_db()
    # Finished (every delivery has its outcome), and nothing left: the edition says so.
    assert digest.status == Digest.Status.FAILED and digest.finished_at
    assert digest.status_note.startswith("No recipient could be sent to")
    failed = selectors.failed_deliveries(digest.pk)
    assert len(failed) == 6 and failed[0]["error"] == error


def test_retry_failed_sends_to_the_failed_recipients_only(local_provider):
    digest = fan_out(60)
    first, second = batch_ids(digest)
    assert sending.send_batch(first).outcome == Outcome.SENT
    local_provider.set_faults(error_rate=1.0, status_codes=[400])
    assert sending.send_batch(second).outcome == Outcome.FAILED
    local_provider.clear_faults()
    Subscriber.objects.filter(email="reader59@example.org").update(status=Subscriber.Status.UNSUBSCRIBED)

    assert sending.retry_failed(digest.pk) == 9  # 10 failed, one has unsubscribed since
    digest.refresh_from_db()
    assert digest.status == Digest.Status.SENDING and digest.finished_at is None
    [retry_batch] = [pk for pk in batch_ids(digest) if pk not in (first, second)]
    assert sending.send_batch(retry_batch).outcome == Outcome.SENT

    stats = local_provider.stats()
    assert stats["messages"] == 59 and stats["duplicates"] == 0
    digest.refresh_from_db()
    assert digest.status == Digest.Status.SENT
    figures = assert_counts_add_up(digest.pk)
    assert (figures["sent"], figures["failed"]) == (59, 1)


def test_recipients_who_left_before_their_batch_are_skipped_with_the_reason(local_provider):
    digest = fan_out(5)
    Subscriber.objects.filter(email="reader0@example.org").update(status=Subscriber.Status.UNSUBSCRIBED)
    Subscriber.objects.filter(email="reader1@example.org").update(status=Subscriber.Status.COMPLAINED)
    Subscriber.objects.filter(email="reader2@example.org").delete()
    send_all(digest)

    sent_to = {m["recipient"] for m in local_provider.messages()}
    assert sent_to == {"reader3@example.org", "reader4@example.org"}
    skipped = dict(
        Delivery.objects.filter(digest=digest, status=Delivery.Status.SKIPPED).values_list(
            "subscriber__email", "error"
        )
    )
    assert skipped["reader0@example.org"].startswith("Unsubscribed")
    assert skipped["reader1@example.org"].startswith("Marked an email as spam")
    assert skipped[None] == "The subscriber's data was erased."
    digest.refresh_from_db()
    assert digest.status == Digest.Status.SENT
    assert assert_counts_add_up(digest.pk)["skipped"] == 3


def test_a_segment_without_articles_is_skipped_with_the_reason(local_provider):
    sport = TopicFactory(slug="sport")
    politics = TopicFactory(slug="politics")
    add_subscribers(3, prefix="sport", segment_key=str(sport.pk))
    add_subscribers(2, prefix="all")
    digest = make_edition()
    digest.articles.first().topics.set([politics])
    sending.start_edition(digest.pk)
    send_all(digest)

    assert {m["recipient"] for m in local_provider.messages()} == {"all0@example.org", "all1@example.org"}
    skipped = Delivery.objects.filter(digest=digest, status=Delivery.Status.SKIPPED)
    assert skipped.count() == 3 and {d.error for d in skipped} == {sending.batches.NO_ARTICLES}


def test_transient_errors_leave_the_batch_pending_and_an_outage_pauses_until_a_probe_succeeds(
    local_provider, settings
):
    settings.PROVIDER_OUTAGE_THRESHOLD = 2
    digest = fan_out(100)
    first, second = batch_ids(digest)
    local_provider.set_faults(outage=True)

    with pytest.raises(sending.TransientProviderError) as transient:
        sending.send_batch(first)
    assert not isinstance(transient.value, sending.ProviderOutage)
    assert transient.value.status_code == 503
    assert transient.value.retry_after == 1.0  # the provider's Retry-After: no retry before it
    assert Batch.objects.get(pk=first).status == Batch.Status.PENDING
    with pytest.raises(sending.ProviderOutage):
        sending.send_batch(second)
    digest.refresh_from_db()
    assert digest.status == Digest.Status.PAUSED and "resumes by itself" in digest.status_note
    assert sending.send_batch(first).outcome == Outcome.WAITING  # queued retries wait

    assert sending.probe_provider(digest.pk) is False  # still down: stays paused
    local_provider.clear_faults()
    assert sending.probe_provider(digest.pk) is True
    digest.refresh_from_db()
    assert digest.status == Digest.Status.SENDING
    sending.send_batch(second)
    digest.refresh_from_db()
    assert digest.status == Digest.Status.SENT
    assert local_provider.stats()["messages"] == 100


def test_editor_pause_holds_batches_and_resume_sends_them(local_provider):
    digest = fan_out(60)
    first, second = batch_ids(digest)
    assert sending.send_batch(first).outcome == Outcome.SENT
    assert sending.pause_edition(digest.pk) is True
    assert sending.pause_edition(digest.pk) is False
    assert sending.send_batch(second).outcome == Outcome.WAITING
    assert sending.probe_provider(digest.pk) is True  # an editor's pause is not resumed by a probe
    digest.refresh_from_db()
    assert digest.status == Digest.Status.PAUSED and digest.status_note == "Paused by an editor."

    assert sending.resume_edition(digest.pk) is True
    assert sending.resume_edition(digest.pk) is False
    assert sending.send_batch(second).outcome == Outcome.SENT
    digest.refresh_from_db()
    assert digest.status == Digest.Status.SENT
    assert local_provider.stats()["duplicates"] == 0


def test_cancelled_edition_skips_its_remaining_batches(local_provider):
    digest = fan_out(60)
    first, second = batch_ids(digest)
    sending.send_batch(first)
    Digest.objects.filter(pk=digest.pk).update(status=Digest.Status.CANCELLED)
    assert sending.send_batch(second).outcome == Outcome.CANCELLED
    assert Delivery.objects.filter(batch_id=second, status=Delivery.Status.SKIPPED).count() == 10
    assert assert_counts_add_up(digest.pk)["pending"] == 0


def test_a_batch_whose_segment_cannot_be_rendered_fails_with_the_reason(local_provider):
    digest = fan_out(3)
    [batch_id] = batch_ids(digest)
    Batch.objects.filter(pk=batch_id).update(segment_key="1,abc")
    assert sending.send_batch(batch_id).outcome == Outcome.FAILED
    errors = set(Delivery.objects.filter(digest=digest).values_list("error", flat=True))
    assert len(errors) == 1 and errors.pop().startswith("Could not render this edition")
    assert local_provider.stats()["calls"] == 0


def test_sweep_restarts_editions_that_lost_their_queued_tasks(local_provider, monkeypatch):
    queued: dict[str, list] = {"batches": [], "probes": []}
    monkeypatch.setattr(sending.control.queue, "queue_batches", lambda ids: queued["batches"].extend(ids))
    monkeypatch.setattr(
        sending.control.queue, "queue_probe", lambda pk, countdown: queued["probes"].append(pk)
    )
    stalled, outage_paused, editor_paused, busy = (
        fan_out(60),
        make_edition(),
        make_edition(),
        make_edition(),
    )
    for digest in (outage_paused, editor_paused, busy):
        sending.start_edition(digest.pk)
    long_ago = timezone.now() - timedelta(minutes=30)
    Digest.objects.update(started_at=long_ago)
    Digest.objects.filter(pk=outage_paused.pk).update(
        status=Digest.Status.PAUSED, status_note=sending.outage.OUTAGE_NOTE + " (HTTP 503)."
    )
    Digest.objects.filter(pk=editor_paused.pk).update(
        status=Digest.Status.PAUSED, status_note="Paused by an editor."
    )
    Batch.objects.filter(digest=busy).update(submitted_at=timezone.now())  # claimed a moment ago
    queued["batches"].clear()

    result = sending.control.restart_stalled()

    assert sorted(queued["batches"]) == batch_ids(stalled)
    assert queued["probes"] == [outage_paused.pk]
    assert result == {"restarted": 1, "probed": 1}


def test_sending_a_batch_costs_the_same_few_queries_whatever_its_size(
    local_provider, settings, django_assert_max_num_queries
):
    settings.PROVIDER_BATCH_SIZE = 300
    digest = fan_out(300)
    [batch_id] = batch_ids(digest)
    sending.send_batch(batch_id)  # renders the segment once; then the same batch again, counted
    Batch.objects.filter(pk=batch_id).update(status=Batch.Status.PENDING)
    Delivery.objects.filter(digest=digest).update(status=Delivery.Status.PENDING)
    Digest.objects.filter(pk=digest.pk).update(status=Digest.Status.SENDING)
    local_provider.reset()
    with django_assert_max_num_queries(12):
        assert sending.send_batch(batch_id).outcome == Outcome.SENT


def test_an_edition_cancelled_while_paused_is_settled_by_the_sweep(local_provider):
    digest = fan_out(60)
    first, second = batch_ids(digest)
    sending.send_batch(first)
    sending.pause_edition(digest.pk)
    Digest(pk=digest.pk).move(Digest.Status.CANCELLED, sources=[Digest.Status.PAUSED])

    assert sending.sweep()["cancelled_skipped"] == 10

    assert Batch.objects.get(pk=second).status == Batch.Status.FAILED
    figures = assert_counts_add_up(digest.pk)
    assert (figures["sent"], figures["skipped"], figures["pending"]) == (50, 10, 0)
    assert sending.settle_cancelled(digest.pk) == 0
