"""The fast Mailgun backend (mailer.sending.mailgun) sends exactly what Anymail's own would: the
same addresses, the same form fields, the same messages at the provider."""

from urllib.parse import parse_qsl, urlencode

import pytest
from anymail.exceptions import AnymailInvalidAddress
from anymail.message import AnymailMessage
from anymail.utils import parse_address_list
from django.core.mail import get_connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailer.sending.mailgun import form_encode, form_quote, parse_recipients

ATEXT = "A-Za-z0-9!#$%&'*+/=?^_`{|}~-"


def shape(addresses):
    return [(a.address, a.addr_spec, a.display_name, a.username, a.domain) for a in addresses]


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.emails(),
            st.from_regex(
                rf"\A[{ATEXT}]{{1,8}}(\.[{ATEXT}]{{1,5}}){{0,2}}@[a-z0-9]([a-z0-9-]{{0,6}}[a-z0-9])?(\.[a-z]{{2,4}}){{0,2}}\Z"
            ),
        ),
        max_size=20,
    )
)
def test_plain_addresses_parse_as_anymail_parses_them(addresses):
    assert shape(parse_recipients(addresses)) == shape(parse_address_list(addresses, field="to"))


@pytest.mark.parametrize(
    "address",
    [
        "Reader One <one@example.org>",
        '"Doe, Jane" <jane@example.org>',
        "josé@example.org",
        "user@bücher.example",
        '"quoted local"@example.org',
        "two@example.org, three@example.org",
        "x@-odd-.org",
    ],
)
def test_other_addresses_fall_back_to_anymail(address):
    assert shape(parse_recipients([address, "plain@example.org"])) == shape(
        parse_address_list([address, "plain@example.org"], field="to")
    )


@pytest.mark.parametrize("address", ["a..b@example.org", ".lead@example.org", "no-at-sign"])
def test_invalid_addresses_are_refused_as_anymail_refuses_them(address):
    with pytest.raises(AnymailInvalidAddress):
        parse_address_list(["plain@example.org", address], field="to")
    with pytest.raises(AnymailInvalidAddress, match="in `to`") as refused:
        parse_recipients(["plain@example.org", address])
    assert repr(address) in str(refused.value)


@settings(max_examples=150)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=20),
        st.one_of(st.text(max_size=300), st.lists(st.text(max_size=50), max_size=4), st.integers()),
        max_size=8,
    )
)
def test_form_body_decodes_to_the_same_fields_as_the_standard_encoding(data):
    body = form_encode(data)
    assert b"\n" not in body and b"\r" not in body
    standard = urlencode(
        [(k, v) for k, vs in data.items() for v in (vs if isinstance(vs, list) else [vs])], doseq=True
    )
    assert parse_qsl(body.decode("ascii"), keep_blank_values=True) == parse_qsl(
        standard, keep_blank_values=True
    )


def test_form_quote_escapes_what_a_form_parser_splits_on():
    assert form_quote("a&b=c+d;e%f g\r\n=\té".encode()) == b"a%26b%3Dc%2Bd%3Be%25f%20g%0D%0A%3D%09%C3%A9"


def test_a_batch_call_reaches_the_provider_as_the_stock_backend_sends_it(local_provider):
    recipients = ["one@example.org", "Reader Two <two@example.org>", "josé@example.org"]

    def message(subject: str) -> AnymailMessage:
        msg = AnymailMessage(
            subject=subject,
            body="Hello %recipient.name%: 100% & more + less; a=b\n%recipient.link%",
            from_email="The Courier <news@example.com>",
            to=recipients,
            headers={"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        )
        msg.attach_alternative('<p>Hello %recipient.name% <a href="%recipient.link%">x</a></p>', "text/html")
        msg.merge_data = {
            addr.addr_spec: {"name": f"Réader {n} & co", "link": f"https://e.example/u/{n}/?d=1&x=%"}
            for n, addr in enumerate(parse_address_list(recipients))
        }
        msg.merge_headers = {
            addr.addr_spec: {"List-Unsubscribe": f"<https://e.example/u/{n}/one-click/>"}
            for n, addr in enumerate(parse_address_list(recipients))
        }
        msg.merge_metadata = {
            a.addr_spec: {"delivery_id": str(n)} for n, a in enumerate(parse_address_list(recipients))
        }
        return msg

    stock = message("stock")
    stock.connection = get_connection("anymail.backends.mailgun.EmailBackend")
    stock.send()
    fast = message("fast")
    fast.connection = get_connection("mailer.sending.mailgun.EmailBackend")
    fast.send()

    assert set(fast.anymail_status.recipients) == {"one@example.org", "two@example.org", "josé@example.org"}
    assert {s.status for s in fast.anymail_status.recipients.values()} == {"queued"}
    by_subject = {}
    for m in local_provider.messages(limit=20):
        by_subject.setdefault(m["subject"], {})[m["recipient"]] = m
    assert len(by_subject["fast"]) == len(by_subject["stock"]) == 3
    for recipient, got in by_subject["fast"].items():
        want = by_subject["stock"][recipient]
        for field in ("html", "text", "from", "metadata", "tags"):
            assert got[field] == want[field], field
        assert got["headers"]["List-Unsubscribe"] == want["headers"]["List-Unsubscribe"]
    one = by_subject["fast"]["one@example.org"]
    assert one["text"].startswith(
        "Hello Réader 0 & co: 100% & more + less; a=b\nhttps://e.example/u/0/?d=1&x=%"
    )
    assert one["metadata"] == {"delivery_id": "0"}
