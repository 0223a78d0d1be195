"""Articles in: storing what the publisher published, from a feed, the CMS API or the admin.

Dedup and update policy (one place for every way in):

- An article's key is the feed's guid, or its URL when the entry has none (keys longer than the
  column are stored as ``sha256:<hex>``). The key is unique in the table, so re-reading a feed,
  or the CMS pushing the same article twice, never makes a second copy. An entry whose key is
  unknown but whose URL is already stored is that stored article (the CMS and the feed naming
  one article differently); it keeps its first key.
- An entry the source has changed (its cleaned title, URL, excerpt, image, author or categories
  differ from what the source sent last time, tracked by ``Article.source_hash``) updates the
  stored article, and its topics when the categories changed. Edits an editor makes in the
  admin therefore survive re-reads of an unchanged entry.
- Once an article went out in a digest (an edition that is sending, paused or sent), it is
  kept as it was mailed: later changes from the source are ignored (outcome ``kept``).
- The publication time is taken from the first sighting and never moved.
- Articles new to the table are announced with ``mailer.signals.articles_published`` after the
  transaction commits.
"""

import hashlib
import hmac
import json
import secrets
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from mailer.feeds import ArticleData
from mailer.models import Article, Digest, DigestArticle, Source
from mailer.sanitize import CONTROL_CHARACTERS, make_excerpt, plain_text, safe_url
from mailer.signals import articles_published
from subscribers.models import Topic

KEY_MAX = 500
URL_MAX = 1000
TITLE_MAX = 500
AUTHOR_MAX = 200
CATEGORY_MAX = 100
CATEGORIES_PER_ARTICLE = 30
CHUNK = 500
# Editions whose articles are frozen: they are (being) mailed as they are.
MAILED_STATUSES = (Digest.Status.SENDING, Digest.Status.PAUSED, Digest.Status.SENT)
SOURCE_FIELDS = ("url", "title", "excerpt", "image_url", "author", "categories")


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    KEPT = "kept"  # changed at the source, but already mailed: left as it was sent


@dataclass
class IngestResult:
    """What became of each entry, by article key (guid, or URL): ``(article id, outcome)``."""

    outcomes: dict[str, tuple[int, Outcome]] = field(default_factory=dict)
    skipped: int = 0  # entries without a usable URL or title

    def ids(self, outcome: Outcome) -> list[int]:
        return [pk for pk, result in self.outcomes.values() if result == outcome]

    @property
    def created_ids(self) -> list[int]:
        return self.ids(Outcome.CREATED)

    @property
    def updated_ids(self) -> list[int]:
        return self.ids(Outcome.UPDATED)

    def summary(self) -> str:
        counts = {outcome: len(self.ids(outcome)) for outcome in Outcome}
        parts = [f"{counts[o]} {o.value}" for o in Outcome if counts[o]]
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        return ", ".join(parts) or "no entries"


def article_key(guid: str, url: str) -> str:
    """The dedup key: the guid, or the URL when there is none; hashed when too long."""
    key = CONTROL_CHARACTERS.sub("", guid or "").strip() or url
    if len(key) > KEY_MAX:
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def clean_article(data: ArticleData, *, now: datetime) -> dict | None:
    """The stored fields of ``data``, cleaned (sanitised excerpt, plain-text title/author and
    categories, absolute http(s) URLs, a publication time not in the future), or None when
    there is no usable URL or title."""
    base = data.base_url or None
    url = safe_url(data.url, base)
    if not url or len(url) > URL_MAX:
        return None
    excerpt = make_excerpt(data.excerpt or data.content, base_url=base or url)
    title = plain_text(data.title, max_length=TITLE_MAX) or plain_text(excerpt, max_length=120)
    if not title:
        return None
    image_url = safe_url(data.image_url, base or url)
    categories: list[str] = []
    for raw in data.categories:
        name = plain_text(raw, max_length=CATEGORY_MAX)
        if name and name.lower() not in {c.lower() for c in categories}:
            categories.append(name)
    published = data.published_at or now
    if timezone.is_naive(published):
        published = published.replace(tzinfo=UTC)
    return {
        "guid": article_key(data.guid, url),
        "url": url,
        "title": title,
        "excerpt": excerpt,
        "image_url": image_url if len(image_url) <= URL_MAX else "",
        "author": plain_text(data.author, max_length=AUTHOR_MAX),
        "categories": categories[:CATEGORIES_PER_ARTICLE],
        "published_at": min(published, now),
    }


def source_hash(row: dict) -> str:
    payload = json.dumps([row[name] for name in SOURCE_FIELDS], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def topic_index() -> dict[str, set[int]]:
    """Lower-cased category name -> topic ids: each topic's ``categories`` lines, its slug and
    its name."""
    index: dict[str, set[int]] = defaultdict(set)
    for topic in Topic.objects.only("id", "slug", "name", "categories"):
        for name in topic.category_names() | {topic.slug.lower(), topic.name.strip().lower()}:
            index[name].add(topic.id)
    return index


def topics_for(categories: Iterable[str], index: dict[str, set[int]]) -> set[int]:
    """The topic ids the ``categories`` map to (case-insensitive; also by slug)."""
    ids: set[int] = set()
    for name in categories:
        lowered = name.strip().lower()
        ids |= index.get(lowered, set()) | index.get(slugify(lowered), set())
    return ids


def _set_topics(article_topics: dict[int, set[int]], *, replace: bool) -> None:
    through = Article.topics.through
    if replace and article_topics:
        through.objects.filter(article_id__in=list(article_topics)).delete()
    through.objects.bulk_create(
        [
            through(article_id=article_id, topic_id=topic_id)
            for article_id, topic_ids in article_topics.items()
            for topic_id in topic_ids
        ],
        ignore_conflicts=True,
    )


def _ingest_chunk(
    source: Source | None, rows: list[dict], index: dict[str, set[int]], now: datetime, result: IngestResult
) -> None:
    fields = ("id", "guid", "source_hash", *SOURCE_FIELDS)
    by_key = {a.guid: a for a in Article.objects.filter(guid__in=[row["guid"] for row in rows]).only(*fields)}
    # An article already stored under another key but at the same address is the same article
    # (the CMS pushing without the feed's guid, a feed that changed its guid scheme).
    unmatched_urls = [row["url"] for row in rows if row["guid"] not in by_key]
    by_url: dict[str, Article] = {}
    if unmatched_urls:
        for article in Article.objects.filter(url__in=unmatched_urls).only(*fields).order_by("id"):
            by_url.setdefault(article.url, article)
    existing = {
        row["guid"]: article
        for row in rows
        if (article := by_key.get(row["guid"]) or by_url.get(row["url"])) is not None
    }
    mailed = set(
        DigestArticle.objects.filter(
            article_id__in=[a.id for a in existing.values()], digest__status__in=MAILED_STATUSES
        ).values_list("article_id", flat=True)
    )

    new_rows = [row for row in rows if row["guid"] not in existing]
    if new_rows:
        Article.objects.bulk_create(
            [Article(source=source, created_at=now, source_hash=source_hash(row), **row) for row in new_rows],
            ignore_conflicts=True,  # another ingest may have stored the same key meanwhile
        )
        stored = Article.objects.filter(guid__in=[row["guid"] for row in new_rows]).values_list(
            "guid", "id", "created_at"
        )
        # ``created_at == now`` tells our inserts from a concurrent writer's.
        created = {guid: pk for guid, pk, created_at in stored if created_at == now}
        for guid, pk, _created_at in stored:
            result.outcomes[guid] = (pk, Outcome.CREATED if guid in created else Outcome.UNCHANGED)
        _set_topics(
            {
                created[row["guid"]]: topics_for(row["categories"], index)
                for row in new_rows
                if row["guid"] in created
            },
            replace=False,
        )

    # Grouped by the fields that differ: an edited headline rewrites the headline, not the rest.
    changed: dict[tuple[str, ...], list[Article]] = defaultdict(list)
    retopic: dict[int, set[int]] = {}
    for row in rows:
        article = existing.get(row["guid"])
        if article is None:
            continue
        digest = source_hash(row)
        if digest == article.source_hash:
            result.outcomes[row["guid"]] = (article.id, Outcome.UNCHANGED)
            continue
        if article.id in mailed:
            result.outcomes[row["guid"]] = (article.id, Outcome.KEPT)
            continue
        if [c.lower() for c in article.categories] != [c.lower() for c in row["categories"]]:
            retopic[article.id] = topics_for(row["categories"], index)
        fields = tuple(name for name in SOURCE_FIELDS if getattr(article, name) != row[name])
        for name in fields:
            setattr(article, name, row[name])
        article.source_hash, article.updated_at = digest, now
        changed[fields].append(article)
        result.outcomes[row["guid"]] = (article.id, Outcome.UPDATED)
    for fields, articles in changed.items():
        # Batches of 100: bulk_update's CASE per field and row gets slow to build in one go.
        Article.objects.bulk_update(articles, [*fields, "source_hash", "updated_at"], batch_size=100)
    _set_topics(retopic, replace=True)


def ingest_entries(
    source: Source | None, entries: Iterable[ArticleData], *, now: datetime | None = None
) -> IngestResult:
    """Store ``entries`` as articles of ``source``: create the new ones, update the ones the
    source changed (see the module docstring), in bulk and in one transaction.

    Calling it again with the same entries changes nothing and reports them ``unchanged``.
    Entries without a usable URL or title are counted in ``skipped``. After commit, sends
    ``articles_published(article_ids=[...])`` for the articles it created, if any.
    """
    now = now or timezone.now()
    rows: dict[str, dict] = {}
    urls: set[str] = set()
    skipped = 0
    for data in entries:
        row = clean_article(data, now=now)
        if row is None:
            skipped += 1
            continue
        if row["guid"] in rows or row["url"] in urls:
            continue  # feeds list newest first: the first sighting wins
        rows[row["guid"]] = row
        urls.add(row["url"])
    result = IngestResult(skipped=skipped)
    if not rows:
        return result
    index = topic_index()
    keys = list(rows)
    with transaction.atomic():
        for start in range(0, len(keys), CHUNK):
            _ingest_chunk(source, [rows[key] for key in keys[start : start + CHUNK]], index, now, result)
        created_ids = result.created_ids
        if created_ids:
            transaction.on_commit(lambda: articles_published.send(sender=Article, article_ids=created_ids))
    return result


def ingest_article(source: Source | None, data: ArticleData) -> tuple[int, Outcome]:
    """Store one article (the CMS API). Returns its id and what happened. Raises ``ValueError``
    when it has no usable URL or title (the API validates before calling)."""
    result = ingest_entries(source, [data])
    if not result.outcomes:
        raise ValueError("The article has no usable URL or title.")
    return next(iter(result.outcomes.values()))


def apply_topics_from_categories(article: Article) -> None:
    """Set ``article.topics`` from its categories (the admin, after an editor changed them)."""
    article.topics.set(topics_for(article.categories, topic_index()))


def remap_topics(article_ids: Iterable[int]) -> int:
    """Replace the topics of the given articles by those their categories map to now (after
    editors changed topics' category lines). Returns how many articles were remapped."""
    index = topic_index()
    ids = list(article_ids)
    count = 0
    with transaction.atomic():
        for start in range(0, len(ids), CHUNK):
            chunk = Article.objects.filter(pk__in=ids[start : start + CHUNK]).values_list("id", "categories")
            mapping = {pk: topics_for(categories, index) for pk, categories in chunk}
            _set_topics(mapping, replace=True)
            count += len(mapping)
    return count


# --- API sources --------------------------------------------------------------------------------

TOKEN_PREFIX = "nl_"  # noqa: S105 (a marker, not a secret)


def issue_api_token(source: Source) -> str:
    """Give ``source`` a new API token and return it. Only its SHA-256 is stored, so this is
    the one time it can be seen; any earlier token of the source stops working."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    Source.objects.filter(pk=source.pk).update(
        kind=Source.Kind.API, token_hash=Source.hash_token(token), token_prefix=token[:8]
    )
    source.kind, source.token_hash, source.token_prefix = Source.Kind.API, Source.hash_token(token), token[:8]
    return token


def create_api_source(name: str) -> tuple[Source, str]:
    """A new active API source named ``name`` and its token (shown once)."""
    source = Source.objects.create(name=name[:100], kind=Source.Kind.API)
    return source, issue_api_token(source)


def authenticate_api_token(token: str) -> Source | None:
    """The active API source ``token`` belongs to, or None. The lookup is by the token's
    SHA-256 (so timing tells nothing about the token) and the match is confirmed with a
    constant-time comparison."""
    if not token or len(token) > 200:
        return None
    digest = Source.hash_token(token)
    for source in Source.objects.filter(kind=Source.Kind.API, is_active=True, token_hash=digest):
        if hmac.compare_digest(source.token_hash, digest):
            return source
    return None
