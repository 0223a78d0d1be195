"""The editors' import screen: check first (dry run), then import what was checked."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from subscribers.imports import ConsentBasis
from subscribers.models import ConsentRecord, Subscriber
from tests.factories import TopicFactory

URL = "/admin/subscribers/subscriber/import/"
WORDING = "Ticked the box on the paper subscription form, 2025."


def upload(text: str, name: str = "readers.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode("utf-8"), content_type="text/csv")


@pytest.fixture
def editor(admin_client):
    TopicFactory(slug="sport", name="Sport")
    return admin_client


def test_the_list_links_to_import_and_to_an_export_of_what_it_shows(editor):
    page = editor.get("/admin/subscribers/subscriber/?status__exact=active").content.decode()
    assert 'href="/admin/subscribers/subscriber/import/"' in page
    assert 'href="/admin/subscribers/subscriber/export/?status__exact=active"' in page


def test_check_then_import(editor):
    response = editor.post(
        URL,
        {
            "file": upload("email,name,topics\nanna@example.org,<b>Anna</b>,sport\nben@example.org,Ben,\n"),
            "basis": ConsentBasis.CONFIRMED_ELSEWHERE,
            "wording": WORDING,
        },
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Dry run, nothing written: 2 rows would give 2 created" in page
    assert not Subscriber.objects.exists()
    token = response.context["token"]
    assert token and f'value="{token}"' in page

    response = editor.post(URL, {"token": token})
    assert response.status_code == 302 and response["Location"] == "/admin/subscribers/subscriber/"
    assert Subscriber.objects.filter(status=Subscriber.Status.ACTIVE).count() == 2
    assert Subscriber.objects.get(email="anna@example.org").name == "<b>Anna</b>"
    assert set(ConsentRecord.objects.values_list("wording", flat=True)) == {WORDING}
    follow = editor.get("/admin/subscribers/subscriber/").content.decode()
    assert "Imported 2 rows: 2 created" in follow and "(file: readers.csv)" in follow

    # The checked file is used once: posting the token again imports nothing more.
    again = editor.post(URL, {"token": token}, follow=True)
    assert "no longer waiting" in again.content.decode()
    assert Subscriber.objects.count() == 2


def test_row_errors_are_listed_with_lines_escaped_and_nothing_can_be_imported(editor):
    response = editor.post(
        URL,
        {
            "file": upload('email,name\ngood@example.org,Good\n"<script>alert(1)</script>",x\n'),
            "basis": ConsentBasis.SEND_CONFIRMATION,
        },
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "Nothing imported: 1 of 2 rows has errors." in page
    assert "<td>3</td><td>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in page
    assert "<script>alert(1)</script>" not in page
    assert not response.context["token"]
    assert "Import 2 rows now" not in page
    assert not Subscriber.objects.exists()


@pytest.mark.parametrize(
    ("file", "basis", "message"),
    [
        (None, ConsentBasis.SEND_CONFIRMATION, "This field is required."),
        ("email\nanna@example.org\n", "because", "Select a valid choice"),
        ("email\nanna@example.org\n", ConsentBasis.CONFIRMED_ELSEWHERE, "Say where and how"),
        ("name\nAnna\n", ConsentBasis.SEND_CONFIRMATION, "at least &#x27;email&#x27;"),
        (b"email\n\xff\xfe\n", ConsentBasis.SEND_CONFIRMATION, "not UTF-8"),
    ],
)
def test_bad_uploads_get_a_clear_400_and_write_nothing(editor, file, basis, message):
    data = {"basis": basis}
    if isinstance(file, str):
        data["file"] = upload(file)
    elif isinstance(file, bytes):
        data["file"] = SimpleUploadedFile("x.csv", file)
    response = editor.post(URL, data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Subscriber.objects.exists()


def test_a_forged_token_imports_nothing(editor):
    response = editor.post(URL, {"token": "made-up"}, follow=True)
    assert "no longer waiting" in response.content.decode()
    assert not Subscriber.objects.exists()


@pytest.mark.django_db
def test_the_screens_are_for_staff_only(client, django_user_model):
    assert client.get(URL).status_code == 302  # to the login
    assert client.get("/admin/subscribers/subscriber/export/").status_code == 302
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(URL).status_code == 403
    assert client.get("/admin/subscribers/subscriber/export/").status_code == 403


@pytest.mark.worker
def test_a_large_file_is_imported_by_a_worker_with_progress(admin_client, celery_worker, monkeypatch):
    import time

    from subscribers import admin_import

    monkeypatch.setattr(admin_import, "BACKGROUND_ROWS", 100)
    rows = "".join(f"reader{i}@example.org\n" for i in range(1_500))
    checked = admin_client.post(
        URL, {"file": upload("email\n" + rows), "basis": ConsentBasis.CONFIRMED_ELSEWHERE, "wording": WORDING}
    )
    token = checked.context["token"]
    response = admin_client.post(URL, {"token": token})
    progress_url = f"{URL}{token}/"
    assert response.status_code == 302 and response["Location"] == progress_url

    page = admin_client.get(progress_url)
    assert page.status_code == 200 and 'id="import-bar"' in page.content.decode()
    deadline = time.monotonic() + 60
    state = {}
    while time.monotonic() < deadline:
        state = admin_client.get(progress_url + "?format=json").json()
        if state["state"] in ("done", "failed"):
            break
        time.sleep(0.2)
    assert state["state"] == "done", state
    assert state["rows"] == state["total"] == 1_500 and state["percent"] == 100.0
    assert state["summary"].startswith("Imported 1500 rows: 1500 created")
    assert Subscriber.objects.filter(status=Subscriber.Status.ACTIVE).count() == 1_500
    # Posting the same token again queues nothing more.
    admin_client.post(URL, {"token": token})
    assert Subscriber.objects.count() == 1_500


def test_progress_of_an_unknown_import_is_a_404(editor):
    assert editor.get(f"{URL}nothing-here/?format=json").status_code == 404
    assert editor.get(f"{URL}nothing-here/").status_code == 404
