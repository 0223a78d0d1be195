"""The editors' ledger screens: deliveries by edition and status with the failure reason, and
the batches; read-only; outside text escaped."""

import pytest

from mailer import selectors
from mailer.models import Batch, Delivery
from tests.test_send_batch import fan_out

pytestmark = pytest.mark.django_db


@pytest.fixture
def edition_with_failures(settings):
    settings.PROVIDER_BATCH_SIZE = 50
    digest = fan_out(8)
    Delivery.objects.filter(
        digest=digest, subscriber__email__in=["reader1@example.org", "reader2@example.org"]
    ).update(status=Delivery.Status.FAILED, error="Refused by the provider: HTTP 400: <b>bad</b> address")
    Delivery.objects.filter(digest=digest, status=Delivery.Status.PENDING).update(status=Delivery.Status.SENT)
    return digest


def test_failed_recipients_of_an_edition_are_listed_with_the_reason(admin_client, edition_with_failures):
    digest = edition_with_failures
    response = admin_client.get(f"/admin/mailer/delivery/?digest__id__exact={digest.pk}&status__exact=failed")
    assert response.status_code == 200
    page = response.content.decode()
    assert "reader1@example.org" in page and "reader2@example.org" in page
    assert "reader3@example.org" not in page
    assert "&lt;b&gt;bad&lt;/b&gt; address" in page and "<b>bad</b>" not in page
    failed = selectors.failed_deliveries(digest.pk)
    assert [f["subscriber__email"] for f in failed] == ["reader1@example.org", "reader2@example.org"]


def test_deliveries_can_be_searched_by_email(admin_client, edition_with_failures):
    response = admin_client.get("/admin/mailer/delivery/?q=reader5%40example")
    page = response.content.decode()
    assert response.status_code == 200 and "reader5@example.org" in page and "reader4@example.org" not in page


def test_batches_are_listed_and_the_ledger_is_read_only(admin_client, edition_with_failures):
    assert admin_client.get("/admin/mailer/batch/").status_code == 200
    delivery = Delivery.objects.first()
    batch = Batch.objects.first()
    assert admin_client.get(f"/admin/mailer/delivery/{delivery.pk}/change/").status_code == 200
    assert admin_client.get(f"/admin/mailer/batch/{batch.pk}/change/").status_code == 200
    response = admin_client.post(f"/admin/mailer/delivery/{delivery.pk}/change/", {"status": "sent"})
    assert response.status_code == 403
    assert admin_client.get("/admin/mailer/delivery/add/").status_code == 403
    assert (
        admin_client.post(f"/admin/mailer/delivery/{delivery.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    assert Delivery.objects.filter(pk=delivery.pk).exists()


def test_figures_add_up_to_the_total(edition_with_failures):
    figures = selectors.edition_figures(edition_with_failures.pk)
    assert (figures["total"], figures["sent"], figures["failed"], figures["pending"], figures["skipped"]) == (
        8,
        6,
        2,
        0,
        0,
    )
