"""CSV export of subscribers: the admin list's filters and search, streamed, safe in spreadsheets."""

import csv
import io

import pytest

from subscribers.exports import COLUMNS, write_csv
from subscribers.imports import ConsentBasis, import_subscribers
from subscribers.models import Subscriber
from tests.factories import SubscriberFactory, TopicFactory

URL = "/admin/subscribers/subscriber/export/"


def read(response) -> list[dict]:
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="subscribers-')
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


@pytest.fixture
def readers(db):
    sport = TopicFactory(slug="sport", name="Sport")
    politics = TopicFactory(slug="politics", name="Politics")
    anna = SubscriberFactory(email="anna@example.org", name="Anna")
    anna.set_topics([sport, politics])
    SubscriberFactory(email="ben@example.org", name="Ben", status=Subscriber.Status.UNSUBSCRIBED)
    SubscriberFactory(email="carla@example.com", name='=HYPERLINK("http://evil")')
    return {"anna": anna}


def test_export_follows_the_admin_lists_filter_and_search(admin_client, readers):
    everyone = read(admin_client.get(URL))
    assert [r["email"] for r in everyone] == ["anna@example.org", "ben@example.org", "carla@example.com"]
    assert list(everyone[0]) == list(COLUMNS)
    assert everyone[0]["topics"] == "sport;politics" and everyone[0]["status"] == "active"

    active = read(admin_client.get(URL + "?status__exact=active"))
    assert [r["email"] for r in active] == ["anna@example.org", "carla@example.com"]
    searched = read(admin_client.get(URL + "?status__exact=active&q=example.org"))
    assert [r["email"] for r in searched] == ["anna@example.org"]


def test_invalid_list_filters_are_a_400(admin_client, readers):
    response = admin_client.get(URL + "?created_at__gte=not-a-date")
    assert response.status_code == 400
    assert "filters are not valid" in response.content.decode()


def test_formula_cells_are_neutralised_for_spreadsheets(admin_client, readers):
    carla = next(r for r in read(admin_client.get(URL)) if r["email"] == "carla@example.com")
    assert carla["name"] == '\'=HYPERLINK("http://evil")'


def test_an_export_imports_back_unchanged(readers):
    out = io.StringIO()
    assert write_csv(Subscriber.objects.filter(status=Subscriber.Status.ACTIVE), out) == 2
    Subscriber.objects.all().delete()
    report = import_subscribers(
        io.StringIO(out.getvalue()),
        basis=ConsentBasis.CONFIRMED_ELSEWHERE,
        wording="Restored from this service's own export.",
    )
    assert report.committed and report.created == 2
    assert report.ignored_columns == [c for c in COLUMNS if c not in ("email", "name", "topics", "frequency")]
    assert sorted(Subscriber.objects.get(email="anna@example.org").topics.values_list("slug", flat=True)) == [
        "politics",
        "sport",
    ]


def test_a_large_export_is_walked_in_keyset_chunks(db, django_assert_max_num_queries):
    from subscribers import exports

    Subscriber.objects.bulk_create(Subscriber(email=f"r{i}@example.org") for i in range(5_000))
    out = io.StringIO()
    # topics, then one query per chunk of 2,000 and the final empty one
    with django_assert_max_num_queries(1 + 5_000 // exports.CHUNK_SIZE + 2):
        assert write_csv(Subscriber.objects.all(), out) == 5_000
    emails = [row[0] for row in csv.reader(io.StringIO(out.getvalue()))][1:]
    assert len(emails) == len(set(emails)) == 5_000
