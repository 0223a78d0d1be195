"""An edition from the editor's "send now" to the subscribers' inboxes, through a real worker
and the local provider: compiled once per segment, each reader gets only their topics and
their own links."""

import re
import time

import pytest

from mailer import digests, rendering
from mailer.models import Delivery, Digest, DigestArticle, RenderedSegment
from subscribers.models import Frequency
from subscribers.tokens import Purpose, read_token
from tests.factories import ArticleFactory, DigestFactory, SubscriberFactory, TopicFactory


def wait_until_sent(digest: Digest, timeout: float = 40) -> Digest:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        digest.refresh_from_db()
        if digest.status == Digest.Status.SENT:
            return digest
        time.sleep(0.2)
    raise AssertionError(f"edition still {digest.status} after {timeout}s")


@pytest.mark.worker
def test_n_recipients_in_k_segments_cost_k_compilations_and_get_their_topics(
    celery_worker, local_provider, settings
):
    settings.PROVIDER_BATCH_SIZE = 4  # several batches per segment
    politics, sport, culture = (
        TopicFactory(name="Politics"),
        TopicFactory(name="Sport"),
        TopicFactory(name="Culture"),
    )
    vote = ArticleFactory(title="Council vote tonight")
    vote.topics.set([politics])
    derby = ArticleFactory(title="Derby ends in a draw")
    derby.topics.set([sport])
    storm = ArticleFactory(title="Storm warning")
    storm.topics.set([TopicFactory(name="Weather")])
    digest = DigestFactory(subject="Tuesday briefing", frequency=Frequency.DAILY)
    for i, article in enumerate([vote, derby, storm]):
        DigestArticle.objects.create(digest=digest, article=article, position=i)

    choices = [[politics], [sport], [politics, sport], [], [culture]]
    readers = []
    for i in range(25):
        reader = SubscriberFactory(name=f"Reader {i}", frequency=Frequency.DAILY)
        reader.set_topics(choices[i % len(choices)])
        readers.append(reader)
    SubscriberFactory(frequency=Frequency.WEEKLY)  # another newsletter

    before = rendering.compilations()
    digests.send_now(digest)
    wait_until_sent(digest)

    segments = {r.segment_key for r in readers}
    assert len(segments) == 5
    # Five segments, one of which (Culture only) matches no article and compiles nothing.
    assert rendering.compilations() - before == 4
    assert RenderedSegment.objects.filter(digest=digest).count() == 5

    messages = local_provider.messages()
    by_address = {m["recipient"]: m for m in messages}
    receiving = [r for r in readers if r.segment_key != str(culture.pk)]
    assert sorted(by_address) == sorted(r.email for r in receiving)
    assert len(messages) == len(receiving)
    for reader in receiving:
        message = by_address[reader.email]
        assert message["subject"] == "Tuesday briefing"
        topics = set(reader.topics.all())
        assert ("Council vote tonight" in message["html"]) == (not topics or politics in topics)
        assert ("Derby ends in a draw" in message["html"]) == (not topics or sport in topics)
        assert ("Storm warning" in message["html"]) == (not topics) == ("Storm warning" in message["text"])
        assert f"Hello {reader.name}," in message["html"] and f"Hello {reader.name}," in message["text"]
        assert "%recipient." not in message["html"] and "%recipient." not in message["text"]
        link = re.search(r'href="[^"]+/unsubscribe/([^/"]+)/\?d=(\d+)"', message["html"])
        assert read_token(Purpose.UNSUBSCRIBE, link.group(1)) == reader.uuid
        assert int(link.group(2)) == digest.pk
    skipped = Delivery.objects.filter(digest=digest, status=Delivery.Status.SKIPPED)
    assert sorted(skipped.values_list("subscriber__email", flat=True)) == sorted(
        r.email for r in readers if r.segment_key == str(culture.pk)
    )
