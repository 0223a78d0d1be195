"""Factories for test data (factory-boy). Shared by every test module; add what you need."""

import factory
from django.utils import timezone

from mailer.models import Article, Digest, Source
from subscribers.models import Subscriber, Topic


class TopicFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Topic
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"topic-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())


class SubscriberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscriber

    email = factory.Sequence(lambda n: f"reader{n}@example.org")
    status = Subscriber.Status.ACTIVE
    confirmed_at = factory.LazyFunction(timezone.now)


class SourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Source

    name = factory.Sequence(lambda n: f"Source {n}")
    url = factory.Sequence(lambda n: f"https://example.com/feed-{n}.xml")


class ArticleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Article

    guid = factory.Sequence(lambda n: f"https://example.com/?p={n}")
    url = factory.Sequence(lambda n: f"https://example.com/news/article-{n}/")
    title = factory.Sequence(lambda n: f"Article number {n}")
    excerpt = "<p>What happened, in a sentence or two.</p>"
    published_at = factory.LazyFunction(timezone.now)


class DigestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Digest

    subject = factory.Sequence(lambda n: f"Edition {n}")
