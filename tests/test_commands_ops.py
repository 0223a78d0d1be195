"""Operations commands: import and export files, resend confirmations, prune expired sign-ups.
Each ends with a summary line; progress goes to stderr."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from subscribers.models import ConsentRecord, Subscriber
from tests.factories import SubscriberFactory, TopicFactory


def run(*args, **kwargs) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err, **kwargs)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def csv_path(tmp_path):
    def make(text: str):
        path = tmp_path / "readers.csv"
        path.write_text(text, encoding="utf-8")
        return path

    return make


def test_import_command_imports_with_progress_and_a_summary(db, csv_path):
    TopicFactory(slug="sport", name="Sport")
    rows = "".join(f"reader{i}@example.org,sport\n" for i in range(2500))
    out, err = run(
        "import_subscribers",
        csv_path("email,topics\n" + rows),
        basis="confirmed_elsewhere",
        wording="Agreed on the 2025 reader survey.",
    )
    assert out.startswith("Imported 2500 rows: 2500 created, 0 updated, 0 unchanged, 0 skipped.")
    assert "2,500/2,500 rows" in err  # the bar reached the end
    assert Subscriber.objects.filter(status=Subscriber.Status.ACTIVE).count() == 2500


def test_import_command_lists_row_errors_and_fails_without_writing(db, csv_path):
    path = csv_path("email\nanna@example.org\nnot-an-address\nben@example.org\n")
    err = io.StringIO()
    with pytest.raises(CommandError, match=r"Nothing imported: 1 of 3 rows has errors\."):
        call_command("import_subscribers", path, basis="send_confirmation", stdout=io.StringIO(), stderr=err)
    assert "line 3: not-an-address: Enter a valid email address" in err.getvalue()
    assert not Subscriber.objects.exists()


def test_import_command_dry_run_and_refusals(db, csv_path, tmp_path):
    out, _ = run(
        "import_subscribers", csv_path("email\nanna@example.org\n"), basis="send_confirmation", dry_run=True
    )
    assert out.startswith("Dry run, nothing written: 1 row would give 1 created")
    assert not Subscriber.objects.exists()
    with pytest.raises(CommandError, match="where and how"):
        run("import_subscribers", csv_path("email\nanna@example.org\n"), basis="confirmed_elsewhere")
    with pytest.raises(CommandError, match="Cannot read"):
        run("import_subscribers", tmp_path / "missing.csv", basis="send_confirmation")


def test_export_command_writes_the_filtered_csv(db, tmp_path):
    sport = TopicFactory(slug="sport", name="Sport")
    anna = SubscriberFactory(email="anna@example.org")
    anna.set_topics([sport])
    SubscriberFactory(email="ben@example.org")
    SubscriberFactory(email="carla@example.org", status=Subscriber.Status.UNSUBSCRIBED)
    target = tmp_path / "out.csv"
    _, err = run("export_subscribers", output=target, status=["active"])
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert [r["email"] for r in rows] == ["anna@example.org", "ben@example.org"]
    assert f"Exported 2 subscribers to {target}" in err
    run("export_subscribers", output=target, topic=["sport"])
    assert [r["email"] for r in csv.DictReader(target.open(encoding="utf-8"))] == ["anna@example.org"]
    with pytest.raises(CommandError, match="Unknown topic: gardening"):
        run("export_subscribers", output=target, topic=["gardening"])


def test_resend_confirmations_queues_only_the_due_pending_sign_ups(
    db, settings, django_capture_on_commit_callbacks
):
    import redis

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    now = timezone.now()
    pending = {"status": Subscriber.Status.PENDING, "confirmed_at": None}
    due = SubscriberFactory(
        **pending, created_at=now - timedelta(days=2), confirmation_sent_at=now - timedelta(days=2)
    )
    never = SubscriberFactory(**pending, created_at=now - timedelta(hours=30), confirmation_sent_at=None)
    SubscriberFactory(
        **pending, created_at=now - timedelta(hours=2), confirmation_sent_at=now - timedelta(hours=2)
    )
    SubscriberFactory(
        **pending, created_at=now - timedelta(days=30), confirmation_sent_at=now - timedelta(days=30)
    )
    SubscriberFactory(created_at=now - timedelta(days=2))  # active

    out, _ = run("resend_confirmations", dry_run=True)
    assert out.strip() == "Dry run: 2 pending sign-ups would get their confirmation email again."
    assert broker.llen("celery") == 0
    with django_capture_on_commit_callbacks(execute=True):
        out, _ = run("resend_confirmations")
    assert out.startswith("Queued 2 confirmation emails for 2 pending sign-ups")
    queued = [json.loads(raw)["headers"] for raw in broker.lrange("celery", 0, -1)]
    assert {h["task"] for h in queued} == {"subscribers.tasks.send_confirmation"}
    assert sorted(h["argsrepr"] for h in queued) == sorted(f"({pk},)" for pk in (due.pk, never.pk))
    with pytest.raises(CommandError, match="resend window"):
        run("resend_confirmations", older_than=0.1)


def test_prune_pending_deletes_only_expired_unconfirmed_sign_ups(db, settings):
    settings.CONFIRMATION_MAX_AGE = 7 * 86400
    now = timezone.now()
    pending = {"status": Subscriber.Status.PENDING, "confirmed_at": None}
    old = SubscriberFactory(
        **pending, created_at=now - timedelta(days=10), confirmation_sent_at=now - timedelta(days=10)
    )
    ConsentRecord.objects.create(subscriber=old, action="subscribe", source="form")
    never_sent = SubscriberFactory(**pending, created_at=now - timedelta(days=9), confirmation_sent_at=None)
    # Signed up long ago but asked again yesterday: the new link is still valid.
    asked_again = SubscriberFactory(
        **pending, created_at=now - timedelta(days=40), confirmation_sent_at=now - timedelta(days=1)
    )
    fresh = SubscriberFactory(**pending, created_at=now - timedelta(days=1))
    active = SubscriberFactory(created_at=now - timedelta(days=100))

    out, _ = run("prune_pending", dry_run=True)
    assert out.strip() == "Dry run: 2 pending sign-ups older than 7 days would be deleted."
    out, err = run("prune_pending")
    assert out.startswith("Deleted 2 pending sign-ups older than 7 days")
    assert "2/2 sign-ups" in err
    remaining = set(Subscriber.objects.values_list("pk", flat=True))
    assert remaining == {asked_again.pk, fresh.pk, active.pk}
    assert old.pk not in remaining and never_sent.pk not in remaining
    assert not ConsentRecord.objects.filter(subscriber_id=old.pk).exists()
    with pytest.raises(CommandError, match="cannot be less"):
        run("prune_pending", days=1)
