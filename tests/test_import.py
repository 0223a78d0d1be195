"""CSV import of subscribers: consent basis, dry run, per-row errors, duplicates, all or nothing."""

import io

import pytest

from subscribers.imports import ConsentBasis, ImportRefused, import_subscribers
from subscribers.models import ConsentRecord, Frequency, Subscriber
from tests.factories import SubscriberFactory, TopicFactory

WORDING = "Ticked the newsletter box on the 2025 reader survey form (survey.example.com)."


def csv_file(text: str) -> io.BytesIO:
    return io.BytesIO(text.encode("utf-8"))


def run(text: str, basis: str = ConsentBasis.CONFIRMED_ELSEWHERE, **kwargs):
    return import_subscribers(csv_file(text), basis=basis, wording=kwargs.pop("wording", WORDING), **kwargs)


@pytest.fixture
def topics(db):
    return {
        "politics": TopicFactory(slug="politics", name="Politics"),
        "sport": TopicFactory(slug="sport", name="Sport"),
    }


def test_confirmed_elsewhere_creates_active_subscribers_with_their_choices_and_consent(topics):
    report = run(
        "email,name,topics,frequency\n"
        "anna@example.org,Anna,politics;sport,weekly\n"
        "ben@example.org,Ben,Sport,\n"
        "carla@bücher.example,,,instant\n"
    )
    assert report.ok and report.committed
    assert (report.rows, report.created, report.updated, report.unchanged) == (3, 3, 0, 0)
    assert "Imported 3 rows: 3 created" in report.summary()

    anna = Subscriber.objects.get(email="anna@example.org")
    assert anna.status == Subscriber.Status.ACTIVE and anna.confirmed_at is not None
    assert anna.name == "Anna" and anna.frequency == Frequency.WEEKLY
    assert set(anna.topics.all()) == set(topics.values())
    assert anna.segment_key == ",".join(str(t.pk) for t in sorted(topics.values(), key=lambda t: t.pk))
    ben = Subscriber.objects.get(email="ben@example.org")
    assert list(ben.topics.all()) == [topics["sport"]] and ben.frequency == Frequency.DAILY
    # The same spelling as the sign-up form stores: an internationalised domain in punycode.
    carla = Subscriber.objects.get(email="carla@xn--bcher-kva.example")
    assert carla.segment_key == "" and carla.frequency == Frequency.INSTANT

    record = anna.consents.get()
    assert record.source == ConsentRecord.Source.IMPORT and record.action == ConsentRecord.Action.CONFIRM
    assert record.wording == WORDING


def test_send_confirmation_keeps_new_readers_pending_and_queues_one_confirmation_each(
    topics, settings, django_capture_on_commit_callbacks
):
    import redis

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    with django_capture_on_commit_callbacks(execute=True):
        report = run(
            "email\nanna@example.org\nben@example.org\n", basis=ConsentBasis.SEND_CONFIRMATION, wording=""
        )
    assert report.committed and report.confirmations_queued == 2
    assert set(Subscriber.objects.values_list("status", flat=True)) == {Subscriber.Status.PENDING}
    assert ConsentRecord.objects.filter(action=ConsentRecord.Action.SUBSCRIBE, source="import").count() == 2
    assert "2 confirmation emails queued" in report.summary()
    assert broker.llen("celery") == 2  # one send_confirmation task per new address


@pytest.mark.django_db(transaction=True)
def test_confirmation_emails_reach_the_imported_readers(local_provider, celery_worker):
    report = run("email,name\nanna@example.org,Anna\n", basis=ConsentBasis.SEND_CONFIRMATION, wording="")
    assert report.confirmations_queued == 1
    local_provider.wait_for(1, timeout=20)
    [message] = local_provider.messages(to="anna@example.org")
    assert "/confirm/" in message["text"]


def test_a_dry_run_reports_what_would_change_and_writes_nothing(topics):
    SubscriberFactory(email="anna@example.org", name="Anna")
    SubscriberFactory(email="ben@example.org", name="Ben")
    report = run(
        "email,name\nanna@example.org,Anna\nben@example.org,Benjamin\ncarla@example.org,Carla\n", dry_run=True
    )
    assert report.ok and not report.committed
    assert (report.created, report.updated, report.unchanged) == (1, 1, 1)
    assert report.summary().startswith("Dry run, nothing written")
    assert Subscriber.objects.count() == 2
    assert Subscriber.objects.get(email="ben@example.org").name == "Ben"
    assert not ConsentRecord.objects.exists()


def test_every_bad_row_is_reported_with_its_line_and_nothing_is_imported(topics):
    report = run(
        "email,name,topics,frequency\n"
        "good@example.org,Good,,\n"
        "not-an-address,,,\n"
        '"evil@example.org\r\nBcc: victim@example.org",,,\n'
        "anna@example.org,Anna,gardening,\n"
        "ben@example.org,Ben,,hourly\n"
        '"carla@example.org","Carla\nTwo",,\n'
        "dan@example.org,Dan,,,surplus\n"
        "also-good@example.org,,,\n"
    )
    assert not report.ok and not report.committed
    lines = {issue.line: issue.message for issue in report.errors}
    assert set(lines) == {3, 5, 6, 7, 9, 10}
    assert "valid email address" in lines[3]
    assert "line breaks or control characters" in lines[5]
    assert "Unknown topic 'gardening'" in lines[6]
    assert "Unknown frequency 'hourly'" in lines[7]
    assert "line breaks" in lines[9]
    assert "5 fields" in lines[10]
    assert report.summary() == "Nothing imported: 6 of 8 rows have errors."
    assert not Subscriber.objects.exists() and not ConsentRecord.objects.exists()


def test_duplicates_in_the_file_and_in_the_database(topics):
    SubscriberFactory(email="anna@example.org", name="Anna")
    gone = SubscriberFactory(email="gone@example.org", status=Subscriber.Status.UNSUBSCRIBED)
    pending = SubscriberFactory(
        email="pending@example.org", status=Subscriber.Status.PENDING, confirmed_at=None
    )
    report = run(
        "email,name,topics\n"
        "anna@example.org,Anna,sport\n"
        "ANNA@Example.org,Anna Again,\n"
        "gone@example.org,,\n"
        "pending@example.org,,\n"
        "new@example.org,,\n"
    )
    assert report.ok and report.committed
    assert (report.created, report.updated, report.unchanged, report.skipped) == (1, 2, 0, 2)
    notices = {n.line: n.message for n in report.notices}
    assert notices[3] == "Same address as line 2; this row is ignored."
    assert "never subscribes this address again" in notices[4]
    anna = Subscriber.objects.get(email="anna@example.org")
    assert anna.name == "Anna" and list(anna.topics.all()) == [topics["sport"]]
    assert anna.segment_key == str(topics["sport"].pk)
    assert anna.consents.get().action == ConsentRecord.Action.CHANGE
    gone.refresh_from_db()
    assert gone.status == Subscriber.Status.UNSUBSCRIBED and not gone.consents.exists()
    pending.refresh_from_db()  # the editor states they agreed elsewhere: confirmed
    assert pending.status == Subscriber.Status.ACTIVE
    assert Subscriber.objects.count() == 4


def test_importing_the_same_file_twice_changes_nothing_the_second_time(topics):
    text = "email,topics,frequency\nanna@example.org,politics,weekly\nben@example.org,,\n"
    assert run(text).created == 2
    again = run(text)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert ConsentRecord.objects.count() == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "The file is empty."),
        (b"name,topics\nAnna,sport\n", "at least 'email'"),
        (b"email,email\na@example.org,b@example.org\n", "appears twice"),
        (b"email,name\nanna@example.org,J\xe9r\xf4me\n", "not UTF-8"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_as_a_whole(db, content, message):
    with pytest.raises(ImportRefused, match=message):
        import_subscribers(io.BytesIO(content), basis=ConsentBasis.CONFIRMED_ELSEWHERE, wording=WORDING)
    assert not Subscriber.objects.exists()


def test_consent_elsewhere_must_say_where(db):
    with pytest.raises(ImportRefused, match="where and how"):
        run("email\nanna@example.org\n", wording=" ")
    with pytest.raises(ImportRefused, match="consent basis"):
        run("email\nanna@example.org\n", basis="because")


def test_excel_files_with_a_bom_and_extra_columns_are_read(db):
    report = run("\ufeffEmail,Status,Name\r\nanna@example.org,active,Anna\r\n")
    assert report.committed and report.ignored_columns == ["status"]
    assert Subscriber.objects.get().name == "Anna"


def test_a_huge_file_is_written_in_chunks_with_progress_and_bulk_queries(topics):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    rows = 12_000
    text = "email,topics\n" + "".join(f"reader{i}@example.org,sport\n" for i in range(rows))
    seen = []
    with CaptureQueriesContext(connection) as queries:
        report = run(text, progress=seen.append)
    assert report.created == rows and report.committed
    assert seen == sorted(seen) and seen[-1] == rows and len(seen) >= rows // 1000
    # Bulk reads and writes: many rows per query, never a query per subscriber (SQLite caps the
    # rows per INSERT by its parameter limit, PostgreSQL writes a chunk in one).
    assert len(queries) < rows / 20
    sport = str(topics["sport"].pk)
    assert Subscriber.objects.filter(status=Subscriber.Status.ACTIVE, segment_key=sport).count() == rows
    assert Subscriber.topics.through.objects.count() == rows


def test_one_bad_row_at_the_end_of_a_huge_file_leaves_nothing_behind(db):
    text = "email\n" + "".join(f"reader{i}@example.org\n" for i in range(5_000)) + "broken@\n"
    report = run(text, chunk_size=500)
    assert not report.committed
    assert [(e.line, e.email) for e in report.errors] == [(5_002, "broken@")]
    assert not Subscriber.objects.exists() and not ConsentRecord.objects.exists()
