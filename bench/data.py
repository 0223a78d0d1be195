"""Benchmark data, made fast: N active daily subscribers spread over a few topic segments (made
by PostgreSQL itself from generate_series; bulk inserts elsewhere), and editions whose articles
cover every segment.

Subscribers are kept between runs when the table already holds exactly this data set, so a
1M-recipient run does not regenerate it; editions and the delivery ledger are emptied each run.
"""

import time
import uuid
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from mailer.models import Article, Batch, Delivery, Digest, DigestArticle, RenderedSegment
from subscribers.models import ConsentRecord, Frequency, Subscriber, Topic

TOPICS = ["politics", "sport", "culture", "business"]
# Topic selections by position in TOPICS; "" (no choice) means every topic. Five segments.
SEGMENTS = [(), (0,), (1,), (0, 2), (1, 3)]
EMAIL_DOMAIN = "bench.example.org"


@dataclass(frozen=True)
class DataSet:
    subscribers: int
    segment_keys: list[str]
    seconds: float  # spent generating (0 when reused)


def email(n: int) -> str:
    return f"reader{n}@{EMAIL_DOMAIN}"


def _topics() -> list[Topic]:
    return [
        Topic.objects.get_or_create(slug=slug, defaults={"name": slug.title(), "position": i})[0]
        for i, slug in enumerate(TOPICS)
    ]


def _segment_keys(topics: list[Topic]) -> list[str]:
    return [",".join(str(pk) for pk in sorted(topics[i].pk for i in chosen)) for chosen in SEGMENTS]


def clear_editions() -> None:
    """Empty the ledger and the editions (fast: TRUNCATE on PostgreSQL)."""
    tables = [m._meta.db_table for m in (Delivery, Batch, RenderedSegment, DigestArticle, Digest)]
    tables.append(Article.topics.through._meta.db_table)
    tables.append(Article._meta.db_table)
    _empty(tables)


def _empty(tables: list[str]) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        else:
            for table in tables:
                cursor.execute(f"DELETE FROM {table}")


def _is_current(count: int, keys: list[str]) -> bool:
    if Subscriber.objects.count() != count:
        return False
    if Subscriber.objects.exclude(status=Subscriber.Status.ACTIVE).exists():
        return False
    last = Subscriber.objects.order_by("-id").values_list("email", "segment_key").first()
    return last is not None and last == (email(count - 1), keys[(count - 1) % len(keys)])


def subscribers(count: int) -> DataSet:
    """Make sure the database holds exactly ``count`` active daily subscribers (reader<n>@...),
    subscriber n in segment n mod 5; regenerates only when it does not."""
    topics = _topics()
    keys = _segment_keys(topics)
    if _is_current(count, keys):
        return DataSet(count, keys, 0.0)
    started = time.perf_counter()
    clear_editions()
    _empty(
        [
            Subscriber.topics.through._meta.db_table,
            ConsentRecord._meta.db_table,
            Subscriber._meta.db_table,
        ]
    )
    if connection.vendor == "postgresql":
        _generate_subscribers(count, topics, keys)
    else:
        _insert_subscribers(count, topics, keys)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"ANALYZE {Subscriber._meta.db_table}")
    return DataSet(count, keys, time.perf_counter() - started)


def _template_row(now) -> dict:
    """Every concrete column of a subscriber with its model default (so columns added later
    still get a value), as database values."""
    template = Subscriber(
        status=Subscriber.Status.ACTIVE, frequency=Frequency.DAILY, confirmed_at=now, created_at=now
    )
    return {
        f.column: f.get_db_prep_save(getattr(template, f.attname), connection)
        for f in Subscriber._meta.concrete_fields
        if not f.primary_key
    }


def _generate_subscribers(count: int, topics: list[Topic], keys: list[str]) -> None:
    """One INSERT ... SELECT FROM generate_series: PostgreSQL makes the rows itself (a million in
    seconds; a COPY fed row by row from Python took minutes on a busy machine). Subscriber n is
    reader<n>@..., in segment n mod 5; every other column gets its model default."""
    fields = {f.column: f for f in Subscriber._meta.concrete_fields if not f.primary_key}
    made = {
        "uuid": ("gen_random_uuid()", []),
        "email": (f"'reader' || n || '@{EMAIL_DOMAIN}'", []),
        "name": ("CASE WHEN n %% 3 = 0 THEN '' ELSE 'Reader ' || n END", []),
        "segment_key": (f"(%s::text[])[n %% {len(keys)} + 1]", [keys]),
    }
    columns, expressions, params = [], [], []
    for column, value in _template_row(timezone.now()).items():
        columns.append(connection.ops.quote_name(column))
        expression, values = made.get(column, (f"%s::{fields[column].db_type(connection)}", [value]))
        expressions.append(expression)
        params.extend(values)
    table = Subscriber._meta.db_table
    sql = f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(expressions)} "
    sql += "FROM generate_series(0, %s) AS n"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [*params, count - 1])
        # The topics table in step with segment_key, in one statement.
        through = Subscriber.topics.through._meta.db_table
        for position, chosen in enumerate(SEGMENTS):
            for topic_index in chosen:
                cursor.execute(
                    f"INSERT INTO {through} (subscriber_id, topic_id) "
                    f"SELECT id, %s FROM {table} WHERE segment_key = %s",
                    [topics[topic_index].pk, keys[position]],
                )


def _insert_subscribers(count: int, topics: list[Topic], keys: list[str]) -> None:
    now = timezone.now()
    step = 5000
    for start in range(0, count, step):
        with transaction.atomic():
            made = Subscriber.objects.bulk_create(
                [
                    Subscriber(
                        email=email(n),
                        name=f"Reader {n}" if n % 3 else "",
                        status=Subscriber.Status.ACTIVE,
                        frequency=Frequency.DAILY,
                        segment_key=keys[n % len(keys)],
                        confirmed_at=now,
                        created_at=now,
                    )
                    for n in range(start, min(count, start + step))
                ]
            )
            Through = Subscriber.topics.through
            Through.objects.bulk_create(
                [
                    Through(subscriber_id=s.pk, topic_id=topics[i].pk)
                    for n, s in enumerate(made, start)
                    for i in SEGMENTS[n % len(SEGMENTS)]
                ]
            )


def edition(*, articles: int = 10, subject: str = "The Riverside Courier: benchmark edition") -> Digest:
    """A daily edition (draft) with ``articles`` articles: one without topic (for everyone) and
    the rest spread over the topics, so every segment has something to read."""
    topics = _topics()
    digest = Digest.objects.create(
        subject=subject,
        frequency=Frequency.DAILY,
        intro="Good morning. Here is what our newsroom published since yesterday.",
    )
    stamp = uuid.uuid4().hex[:8]
    made = Article.objects.bulk_create(
        [
            Article(
                guid=f"https://news.example.com/?p={stamp}-{n}",
                url=f"https://news.example.com/2026/{stamp}/article-{n}/",
                title=f"Council approves the new riverside park, article {n}",
                excerpt="<p>" + "The plan adds trees, paths and a playground along the water. " * 4 + "</p>",
                image_url=f"https://news.example.com/images/{n}.jpg",
                author="Sam Reporter",
            )
            for n in range(articles)
        ]
    )
    Article.topics.through.objects.bulk_create(
        [
            Article.topics.through(article_id=a.pk, topic_id=topics[(n - 1) % len(topics)].pk)
            for n, a in enumerate(made)
            if n > 0
        ]
    )
    DigestArticle.objects.bulk_create(
        [DigestArticle(digest=digest, article=a, position=n) for n, a in enumerate(made)]
    )
    return digest
