"""What people read from the local provider: the inbox pages, the JSON API, the list command;
and the form decoder every call goes through."""

import subprocess
import sys
from urllib.parse import parse_qsl, urlencode

import requests
from anymail.message import AnymailMessage
from django.core.mail import send_mail
from hypothesis import given
from hypothesis import strategies as st

from localprovider.forms import parse_urlencoded
from tests.fixtures.provider import ROOT

HOSTILE = "<script>alert('x')</script>"


def send_hostile() -> None:
    message = AnymailMessage(
        subject=f"Breaking {HOSTILE}",
        body=f"Text part {HOSTILE} & more",
        from_email='"Evil <b>" <newsletter@example.com>',
        to=["ann@example.org"],
        headers={"X-Note": '"><img src=x onerror=alert(1)>'},
    )
    message.attach_alternative(
        f'<p onclick="steal()">Hi</p>{HOSTILE}<a href="https://a/">"q"</a>', "text/html"
    )
    message.send()


def test_the_inbox_lists_messages_with_everything_escaped(local_provider):
    send_hostile()

    response = requests.get(local_provider.url, timeout=10)

    assert response.status_code == 200
    assert (
        "script-src" not in response.headers["Content-Security-Policy"]
    )  # default-src 'none' forbids scripts
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "<script>" not in response.text
    assert "Breaking &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in response.text
    assert "ann@example.org" in response.text


def test_a_message_page_shows_the_html_part_only_inside_a_sandboxed_frame(local_provider):
    send_hostile()
    message = local_provider.messages()[0]

    page = requests.get(f"{local_provider.url}/messages/{message['id']}", timeout=10).text

    assert "<script>" not in page and "<img src=x" not in page and '<p onclick="steal()">' not in page
    frame = page.split("<iframe", 1)[1].split(">", 1)[0]
    assert "sandbox='allow-popups allow-popups-to-escape-sandbox'" in frame
    assert "allow-scripts" not in frame and "allow-same-origin" not in frame
    assert "&lt;p onclick=&quot;steal()&quot;&gt;Hi&lt;/p&gt;&lt;script&gt;" in frame
    assert "Text part &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page


def test_an_unknown_message_is_404(local_provider):
    response = requests.get(f"{local_provider.url}/messages/999999", timeout=10)

    assert response.status_code == 404
    assert response.json() == {"message": "No such message."}


def test_the_inbox_filters_by_recipient(local_provider):
    send_mail("For Ann", "x", "newsletter@example.com", ["ann@example.org"])
    send_mail("For Bob", "x", "newsletter@example.com", ["bob@example.org"])

    page = requests.get(local_provider.url, params={"to": "bob@example.org"}, timeout=10).text

    assert "For Bob" in page and "For Ann" not in page


def test_the_api_lists_newest_first_and_honours_limit(local_provider):
    for n in range(3):
        send_mail(f"Edition {n}", "x", "newsletter@example.com", ["ann@example.org"])

    latest = local_provider.messages(limit=2)

    assert [m["subject"] for m in latest] == ["Edition 2", "Edition 1"]
    assert local_provider.message(latest[0]["id"]) == latest[0]


def test_a_bad_limit_is_400(local_provider):
    response = requests.get(f"{local_provider.url}/api/messages", params={"limit": "lots"}, timeout=10)

    assert response.status_code == 400
    assert response.json() == {"message": "limit must be a whole number"}


def test_reading_never_changes_state(local_provider):
    send_mail("Hello", "x", "newsletter@example.com", ["ann@example.org"])
    before = local_provider.stats()

    for path in (
        "/",
        "/api/messages",
        "/api/stats",
        "/messages/1",
        "/api/faults",
        "/api/marks",
        "/api/reset",
    ):
        requests.get(f"{local_provider.url}{path}", timeout=10)

    assert local_provider.stats() == before


def test_wait_for_returns_once_enough_messages_are_recorded(local_provider):
    send_mail("Hello", "x", "newsletter@example.com", ["ann@example.org", "bob@example.org"])

    assert {m["recipient"] for m in local_provider.wait_for(2, timeout=5)} == {
        "ann@example.org",
        "bob@example.org",
    }


def test_the_list_command_prints_the_latest_messages_and_a_summary(local_provider, local_provider_process):
    send_mail("Morning edition", "x", "newsletter@example.com", ["ann@example.org", "bob@example.org"])
    send_mail("Evening edition", "x", "newsletter@example.com", ["ann@example.org"])

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "localprovider",
            "list",
            "--db",
            str(local_provider_process.db),
            "--to",
            "ann@example.org",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "ann@example.org" in lines[0] and "Evening edition" in lines[0]
    assert "ann@example.org" in lines[1] and "Morning edition" in lines[1]
    assert lines[2] == (
        "2 shown; 3 messages to 2 recipients in 2 accepted calls (0 rejected, 0 idempotent replays); 0 duplicates"
    )


def test_the_list_command_explains_a_missing_database(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "localprovider", "list", "--db", str(tmp_path / "none.sqlite3")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "no local provider database at" in result.stderr
    assert not (tmp_path / "none.sqlite3").exists()


form_items = st.lists(st.tuples(st.text(min_size=1), st.text()), max_size=8)


@given(form_items)
def test_the_fast_form_decoder_agrees_with_the_standard_library(items):
    body = urlencode(items)

    assert parse_urlencoded(body.encode()) == parse_qsl(body, keep_blank_values=True)


@given(st.text(alphabet="%=+&a1F_ \u00e9", max_size=30))
def test_the_fast_form_decoder_agrees_or_steps_aside_on_raw_input(raw):
    decoded = parse_urlencoded(raw.encode())

    # None sends the body to werkzeug's parser; an answer must be the standard library's.
    if decoded is not None:
        assert decoded == parse_qsl(raw, keep_blank_values=True)


def test_the_subject_filter_ignores_case_beyond_ascii(local_provider):
    send_mail("Édition du matin", "x", "newsletter@example.com", ["ann@example.org"])
    send_mail("Evening edition", "x", "newsletter@example.com", ["ann@example.org"])

    assert [m["subject"] for m in local_provider.messages(subject="édition")] == ["Édition du matin"]
    assert [m["subject"] for m in local_provider.messages(subject="EDITION")] == ["Evening edition"]
