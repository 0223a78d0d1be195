"""Fault injection and idempotent replays, seen through Anymail's real Mailgun backend."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from anymail.exceptions import AnymailAPIError
from anymail.message import AnymailMessage


def send(key: str | None = None, to: str = "ann@example.org") -> AnymailMessage:
    message = AnymailMessage(
        subject="Today's news",
        body="Text",
        from_email="newsletter@example.com",
        to=[to],
        headers={"X-Idempotency-Key": key} if key else {},
    )
    message.send()
    return message


def status_of_send(**kwargs) -> int:
    try:
        send(**kwargs)
    except AnymailAPIError as exc:
        return exc.status_code
    return 200


@pytest.mark.parametrize("code", [500, 502, 503, 429])
def test_error_rate_answers_the_chosen_status_and_records_nothing(local_provider, code):
    local_provider.set_faults(error_rate=1.0, status_codes=[code])

    with pytest.raises(AnymailAPIError) as raised:
        send()

    assert raised.value.status_code == code
    stats = local_provider.stats()
    assert (stats["messages"], stats["rejected_calls"], stats["by_status"]) == (0, 1, {str(code): 1})


def test_a_seed_makes_the_faults_repeatable(local_provider):
    def run() -> list[int]:
        local_provider.set_faults(error_rate=0.5, seed=7)
        return [status_of_send() for _ in range(12)]

    first = run()
    second = run()

    assert first == second
    assert 200 in first and set(first) - {200}
    assert local_provider.stats()["messages"] == 2 * first.count(200)


def test_clearing_faults_restores_service(local_provider):
    local_provider.set_faults(error_rate=1.0)
    assert status_of_send() != 200

    local_provider.set_faults()

    assert status_of_send() == 200
    assert local_provider.stats()["messages"] == 1


def test_an_outage_answers_503_until_cleared(local_provider):
    local_provider.set_faults(outage=True)
    assert [status_of_send() for _ in range(3)] == [503, 503, 503]

    local_provider.set_faults()

    assert status_of_send() == 200


def test_an_outage_with_seconds_ends_by_itself(local_provider):
    local_provider.set_faults(outage_seconds=0.3)
    assert status_of_send() == 503

    time.sleep(0.4)

    assert status_of_send() == 200


def test_calls_beyond_the_rate_limit_get_429(local_provider):
    local_provider.set_faults(rate_limit_per_second=1)

    statuses = [status_of_send(), status_of_send()]

    assert statuses == [200, 429]
    assert local_provider.stats()["messages"] == 1


def test_latency_delays_the_answer(local_provider):
    local_provider.set_faults(latency_ms=300)

    started = time.monotonic()
    send()

    # Not a speed assertion: the injected delay must have been applied at all.
    assert time.monotonic() - started >= 0.3


def test_a_hung_call_times_the_client_out_and_records_nothing(local_provider, settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "REQUESTS_TIMEOUT": (2, 0.3)}
    local_provider.set_faults(timeout_rate=1.0, hang_seconds=1)

    with pytest.raises(AnymailAPIError) as raised:
        send()

    assert isinstance(raised.value.__cause__, requests.Timeout)
    assert local_provider.stats()["messages"] == 0


def test_a_hung_call_may_have_been_accepted(local_provider, settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "REQUESTS_TIMEOUT": (2, 0.3)}
    local_provider.set_faults(timeout_rate=1.0, hang_seconds=1, timeout_accepts=True)

    with pytest.raises(AnymailAPIError):
        send()

    assert [m["recipient"] for m in local_provider.messages()] == ["ann@example.org"]


def test_accept_then_fail_records_the_messages_but_answers_500(local_provider):
    local_provider.set_faults(accept_then_fail_rate=1.0)

    with pytest.raises(AnymailAPIError) as raised:
        send(key="batch-1")

    assert raised.value.status_code == 500
    assert [m["recipient"] for m in local_provider.messages()] == ["ann@example.org"]
    assert local_provider.stats()["by_status"] == {"500": 1}


def test_retrying_with_the_idempotency_key_learns_the_id_and_sends_nothing_new(local_provider):
    """The uncertain window closed: the provider accepted, the client saw a 500, the retry with
    the batch's key gets the original answer and no second copy goes out."""
    local_provider.set_faults(accept_then_fail_rate=1.0)
    with pytest.raises(AnymailAPIError):
        send(key="batch-1")
    local_provider.set_faults()

    retried = send(key="batch-1")

    messages = local_provider.messages()
    assert len(messages) == 1
    assert retried.anymail_status.message_id == messages[0]["message_id"]
    stats = local_provider.stats()
    assert (stats["messages"], stats["duplicates"], stats["idempotent_replays"]) == (1, 0, 1)


def test_a_replayed_key_answers_the_original_response(local_provider):
    first = send(key="batch-9")
    again = send(key="batch-9", to="someone.else@example.org")
    other = send(key="batch-10")

    assert again.anymail_status.message_id == first.anymail_status.message_id
    assert other.anymail_status.message_id != first.anymail_status.message_id
    assert [m["recipient"] for m in local_provider.messages()] == ["ann@example.org", "ann@example.org"]
    assert local_provider.stats()["idempotent_replays"] == 1


def test_without_a_key_a_resend_is_a_recorded_duplicate(local_provider):
    send()
    send()

    stats = local_provider.stats()
    assert (stats["messages"], stats["unique_recipients"], stats["duplicates"]) == (2, 1, 1)


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        ({"error_rate": 2}, "error_rate must be between 0 and 1"),
        ({"status_codes": [200]}, "status_codes must be a non-empty list of HTTP error codes"),
        ({"latency_ms": "slow"}, "latency_ms must be a number"),
        ({"outage": "yes"}, "outage must be true or false"),
        ({"nonsense": 1}, "unknown fault setting(s): nonsense"),
    ],
)
def test_bad_fault_settings_get_400_and_change_nothing(local_provider, faults, message):
    local_provider.set_faults(latency_ms=5)

    response = requests.post(f"{local_provider.url}/api/faults", json=faults, timeout=10)

    assert response.status_code == 400
    assert message in response.json()["message"]
    assert requests.get(f"{local_provider.url}/api/faults", timeout=10).json()["latency_ms"] == 5


def test_reset_clears_faults(local_provider):
    local_provider.set_faults(outage=True)

    local_provider.reset()

    assert status_of_send() == 200


def test_concurrent_calls_with_one_key_record_once(local_provider):
    def post(_):
        response = requests.post(
            f"{local_provider.api_url}/example.com/messages",
            data={
                "from": "a@example.com",
                "to": "ann@example.org",
                "text": "x",
                "h:X-Idempotency-Key": "same",
            },
            auth=("api", "local-provider-key"),
            timeout=10,
        )
        return response.status_code, response.json()["id"]

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(post, range(6)))

    assert {status for status, _ in answers} == {200}
    assert len({message_id for _, message_id in answers}) == 1
    stats = local_provider.stats()
    assert (stats["messages"], stats["idempotent_replays"]) == (1, 5)
