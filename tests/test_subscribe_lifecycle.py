"""The subscriber's status life cycle: every move is a guarded UPDATE, so two processes holding
the same row cannot both make it."""

import pytest

from subscribers.models import Subscriber
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db

S = Subscriber.Status


def twice(subscriber):
    """Two copies of one row, as two workers would load it."""
    return Subscriber.objects.get(pk=subscriber.pk), Subscriber.objects.get(pk=subscriber.pk)


def test_pending_to_active_happens_once():
    a, b = twice(SubscriberFactory(status=S.PENDING, confirmed_at=None))
    assert a.confirm() is True and b.confirm() is False
    assert Subscriber.objects.get(pk=a.pk).status == S.ACTIVE


@pytest.mark.parametrize("status", [S.ACTIVE, S.UNSUBSCRIBED, S.BOUNCED, S.COMPLAINED])
def test_only_pending_subscribers_can_be_confirmed(status):
    subscriber = SubscriberFactory(status=status)
    assert subscriber.confirm() is False
    assert Subscriber.objects.get(pk=subscriber.pk).status == status


@pytest.mark.parametrize(("status", "moves"), [(S.PENDING, True), (S.ACTIVE, True), (S.BOUNCED, False)])
def test_unsubscribe_moves_pending_and_active_only(status, moves):
    a, b = twice(SubscriberFactory(status=status))
    assert a.unsubscribe() is moves
    assert b.unsubscribe() is False
    assert Subscriber.objects.get(pk=a.pk).status == (S.UNSUBSCRIBED if moves else status)


def test_reopen_takes_an_unsubscribed_reader_back_to_pending_only():
    subscriber = SubscriberFactory(status=S.UNSUBSCRIBED)
    assert subscriber.reopen() is True and subscriber.confirmed_at is None
    assert subscriber.reopen() is False
    for status in (S.ACTIVE, S.BOUNCED, S.COMPLAINED):
        assert SubscriberFactory(status=status).reopen() is False


def test_suppression_is_final_for_sign_ups():
    subscriber = SubscriberFactory()
    assert subscriber.suppress(status=S.BOUNCED, reason="550 no such user") is True
    assert subscriber.suppress(status=S.COMPLAINED, reason="spam") is False
    assert subscriber.reopen() is False and subscriber.confirm() is False


def test_one_confirmation_claim_per_window():
    a, b = twice(SubscriberFactory(status=S.PENDING, confirmed_at=None))
    assert a.claim_confirmation(window=3600) is True
    assert b.claim_confirmation(window=3600) is False
    assert b.claim_confirmation(window=0) is True  # an editor's explicit resend
    active = SubscriberFactory(status=S.ACTIVE)
    assert active.claim_confirmation(window=0) is False
