"""The local provider speaks Mailgun's messages API as Anymail's real Mailgun backend uses it,
and records each recipient's personalised message."""

import pytest
import requests
from anymail.exceptions import AnymailAPIError
from anymail.message import AnymailMessage
from django.core.mail import send_mail
from werkzeug.datastructures import MultiDict

from localprovider.mailgun import parse_submission
from localprovider.store import Store


def test_send_mail_is_recorded_with_every_part(local_provider):
    sent = send_mail(
        "Welcome to the Courier",
        "Plain text body",
        "The Courier <newsletter@example.com>",
        ["Ann Reader <ann@example.org>", "bob@example.org"],
        html_message="<p>HTML body</p>",
    )

    assert sent == 1
    messages = local_provider.messages()
    assert sorted(m["recipient"] for m in messages) == ["ann@example.org", "bob@example.org"]
    ann = local_provider.messages(to="ann@example.org")[0]
    assert ann["subject"] == "Welcome to the Courier"
    assert ann["from"] == "The Courier <newsletter@example.com>"
    assert ann["to"] == "Ann Reader <ann@example.org>"
    assert ann["html"] == "<p>HTML body</p>"
    assert ann["text"] == "Plain text body"
    # Without recipient variables it is one email to both, as Mailgun sends it.
    assert ann["headers"]["To"] == "Ann Reader <ann@example.org>, bob@example.org"
    assert ann["message_id"].startswith("<") and ann["message_id"].endswith("@example.com>")
    stats = local_provider.stats()
    assert (stats["calls"], stats["accepted_calls"], stats["messages"]) == (1, 1, 2)
    assert stats["unique_recipients"] == 2 and stats["duplicates"] == 0


def test_anymail_learns_the_message_id_the_provider_recorded(local_provider):
    message = AnymailMessage(
        subject="Hello",
        body="Text",
        from_email="newsletter@example.com",
        to=["ann@example.org"],
        tags=["welcome"],
        metadata={"subscriber": "42"},
        headers={"X-Digest-Id": "7"},
        track_clicks=False,
    )
    message.send()

    recorded = local_provider.messages()[0]
    assert message.anymail_status.status == {"queued"}
    assert message.anymail_status.message_id == recorded["message_id"]
    assert recorded["tags"] == ["welcome"]
    assert recorded["metadata"] == {"subscriber": "42"}
    assert recorded["headers"]["X-Digest-Id"] == "7"
    assert recorded["options"] == {"tracking-clicks": "no"}


def batch_message(count: int, **extra) -> AnymailMessage:
    recipients = [f"reader{n}@example.org" for n in range(count)]
    message = AnymailMessage(
        subject="Your digest, %recipient.name%",
        body="Hello %recipient.name%. Unsubscribe: %recipient.unsubscribe_url%",
        from_email="The Courier <newsletter@example.com>",
        to=recipients,
        headers={"X-Digest-Id": "12"},
        tags=["digest"],
        **extra,
    )
    message.attach_alternative(
        '<p>Hello %recipient.name%</p><a href="%recipient.unsubscribe_url%">Unsubscribe</a>', "text/html"
    )
    message.merge_data = {
        address: {"name": f"Reader {n}", "unsubscribe_url": f"https://news.example.com/unsubscribe/t{n}/"}
        for n, address in enumerate(recipients)
    }
    message.merge_headers = {
        address: {
            "List-Unsubscribe": f"<https://news.example.com/unsubscribe/t{n}/one-click/?d=12>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        for n, address in enumerate(recipients)
    }
    message.merge_metadata = {address: {"subscriber": str(n)} for n, address in enumerate(recipients)}
    return message


def test_a_batch_of_a_thousand_is_one_call_with_a_personal_message_each(local_provider):
    message = batch_message(1000)
    message.send()

    stats = local_provider.stats()
    assert (stats["calls"], stats["messages"], stats["unique_recipients"]) == (1, 1000, 1000)
    assert stats["duplicates"] == 0
    messages = local_provider.messages()
    assert len(messages) == 1000
    assert {m["batch_id"] for m in messages} == {messages[0]["batch_id"]}
    assert {m["message_id"] for m in messages} == {message.anymail_status.message_id}
    reader = local_provider.messages(to="reader734@example.org")[0]
    assert reader["subject"] == "Your digest, Reader 734"
    assert reader["text"] == "Hello Reader 734. Unsubscribe: https://news.example.com/unsubscribe/t734/"
    assert '<a href="https://news.example.com/unsubscribe/t734/">' in reader["html"]
    assert reader["headers"]["To"] == "reader734@example.org"
    assert (
        reader["headers"]["List-Unsubscribe"] == "<https://news.example.com/unsubscribe/t734/one-click/?d=12>"
    )
    assert reader["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert reader["metadata"] == {"subscriber": "734"}
    assert reader["tags"] == ["digest"]
    assert "%recipient" not in str(messages)


def test_subject_filter_sees_the_personalised_subject(local_provider):
    batch_message(3).send()

    found = local_provider.messages(subject="reader 2")
    assert [m["recipient"] for m in found] == ["reader2@example.org"]


def test_the_same_email_twice_to_a_recipient_counts_as_a_duplicate(local_provider):
    batch_message(3).send()
    batch_message(2).send()  # readers 0 and 1 again, same X-Digest-Id

    stats = local_provider.stats()
    assert (stats["messages"], stats["unique_recipients"], stats["duplicates"]) == (5, 3, 2)


def test_a_wrong_api_key_is_refused_and_records_nothing(local_provider, settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "MAILGUN_API_KEY": "not-the-key"}

    with pytest.raises(AnymailAPIError) as raised:
        send_mail("Hi", "Body", "newsletter@example.com", ["ann@example.org"])

    assert raised.value.status_code == 401
    stats = local_provider.stats()
    assert (stats["calls"], stats["rejected_calls"], stats["messages"]) == (1, 1, 0)
    assert stats["by_status"] == {"401": 1}


def post_raw(local_provider, data, files=None):
    return requests.post(
        f"{local_provider.api_url}/example.com/messages",
        data=data,
        files=files or {"attachment-placeholder": ("", b"")},
        auth=("api", "local-provider-key"),
        timeout=10,
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"to": "ann@example.org", "text": "x"}, "'from' parameter is missing"),
        ({"from": "a@example.com", "text": "x"}, "'to' parameter is missing"),
        (
            {"from": "a@example.com", "to": "not an address", "text": "x"},
            "'to' parameter is not a valid address",
        ),
        ({"from": "a@example.com", "to": "ann@example.org"}, "Need at least one of 'text', 'html'"),
        (
            {"from": "a@example.com", "to": "ann@example.org", "text": "x", "recipient-variables": "{nope"},
            "'recipient-variables' parameter is not a valid JSON",
        ),
        (
            {"from": "a@example.com", "to": "ann@example.org", "text": "x", "recipient-variables": "[1]"},
            "'recipient-variables' must be a JSON object",
        ),
        (
            {"from": "a@example.com", "to": "ann@example.org", "text": "x", "h:X-Evil": "a\r\nBcc: b@c.d"},
            "'h:X-Evil' is not a valid header",
        ),
        (
            {
                "from": "a@example.com",
                "to": "ann@example.org",
                "text": "x",
                "h:List-Unsubscribe": "<%recipient.h:List-Unsubscribe%>",
                "recipient-variables": '{"ann@example.org": {"h:List-Unsubscribe": "https://a/\\r\\nBcc: x@y.z"}}',
            },
            "recipient variable 'h:List-Unsubscribe' of ann@example.org would break a header line",
        ),
        (
            {"from": "a@example.com\r\nBcc: x@y.z", "to": "ann@example.org", "text": "x"},
            "'from' parameter is not a valid address",
        ),
        (
            {"from": "a@example.com", "to": [f"r{n}@example.org" for n in range(1001)], "text": "x"},
            "Too many recipients: 1001, the maximum is 1000",
        ),
    ],
)
def test_invalid_calls_get_mailguns_400_and_record_nothing(local_provider, data, message):
    response = post_raw(local_provider, data)

    assert response.status_code == 400
    assert message in response.json()["message"]
    stats = local_provider.stats()
    assert (stats["rejected_calls"], stats["messages"]) == (1, 0)


def test_an_impossible_sender_domain_is_mailguns_404(local_provider):
    message = AnymailMessage(
        subject="Hi", body="x", from_email="newsletter@example.com", to=["ann@example.org"]
    )
    message.esp_extra = {"sender_domain": "not a domain"}

    with pytest.raises(AnymailAPIError) as raised:
        message.send()

    assert raised.value.status_code == 404
    assert "Unknown sender domain 'not a domain'" in str(raised.value)
    assert local_provider.stats()["messages"] == 0


def test_figures_survive_a_restart_of_the_provider(tmp_path):
    """Duplicate counting looks up keys kept in memory; they are rebuilt from the file."""
    form = MultiDict(
        [("from", "a@example.com"), ("to", "ann@example.org"), ("subject", "Edition 1"), ("text", "x")]
    )
    Store(str(tmp_path / "p.sqlite3")).accept(parse_submission("example.com", form), "<1@example.com>")

    reopened = Store(str(tmp_path / "p.sqlite3"))
    reopened.accept(parse_submission("example.com", form), "<2@example.com>")

    stats = reopened.stats()
    assert (stats["messages"], stats["unique_recipients"], stats["duplicates"]) == (2, 1, 1)
