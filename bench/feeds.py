"""Articles in: milliseconds to parse a WordPress-shaped RSS feed (feedparser), to clean its
entries (nh3, plain text, URLs) and to store them (bulk upsert), for a first read (every entry
new), a re-read (nothing changed) and a read where every entry changed.

    bin/bench feeds [--items 50 500] [--repeat 3]

Uses the scratch database and removes the articles it made.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import figure, heading, require_scratch_database, setup_django

GUID_PREFIX = "bench-feed:"


def make_feed(items: int, *, revision: int = 0) -> bytes:
    entries = "".join(
        f"<item><title>Council&#8217;s budget, part {n}{' (updated)' * revision}</title>"
        f"<link>https://news.example/2026/11/story-{n}/</link>"
        "<dc:creator><![CDATA[Jane Doe]]></dc:creator>"
        "<pubDate>Tue, 24 Nov 2026 09:00:00 +0000</pubDate>"
        "<category><![CDATA[Politics]]></category><category><![CDATA[Local News]]></category>"
        f'<guid isPermaLink="false">{GUID_PREFIX}{n}</guid>'
        f'<description><![CDATA[<p>What happened in story {n}, with <a href="/x">a link</a>. '
        "[&#8230;]</p><p>The post appeared first on Riverside.</p>]]></description>"
        f'<content:encoded><![CDATA[<p><img src="/img/{n}.jpg"> {"Body text. " * 80}</p>]]></content:encoded>'
        '<media:content url="https://cdn.example/m.jpg" medium="image" /></item>'
        for n in range(items)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/">'
        f"<channel><title>Bench</title><link>https://news.example</link>{entries}</channel></rss>"
    ).encode()


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return (time.perf_counter() - start) * 1000, value


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    setup_django()
    print(f"database: {require_scratch_database()}")

    from django.utils import timezone

    from mailer.articles import clean_article, ingest_entries
    from mailer.feeds import parse_feed
    from mailer.models import Article

    def clean_all(entries, now):
        return [clean_article(entry, now=now) for entry in entries]

    summary = []
    for items in args.items:
        heading(f"{items} entries")
        bodies = [make_feed(items), make_feed(items, revision=1)]
        figure("feed size", len(bodies[0]) // 1024, "KiB")
        parse_ms, clean_ms, first_ms, again_ms, changed_ms = [], [], [], [], []
        for _ in range(args.repeat):
            Article.objects.filter(guid__startswith=GUID_PREFIX).delete()
            now = timezone.now()
            ms, parsed = timed(parse_feed, bodies[0], url="https://news.example/feed/", fetched_at=now)
            parse_ms.append(ms)
            clean_ms.append(timed(clean_all, parsed.entries, now)[0])
            first_ms.append(timed(ingest_entries, None, parsed.entries)[0])
            again_ms.append(timed(ingest_entries, None, parsed.entries)[0])
            changed = parse_feed(bodies[1], url="https://news.example/feed/", fetched_at=now)
            changed_ms.append(timed(ingest_entries, None, changed.entries)[0])
        Article.objects.filter(guid__startswith=GUID_PREFIX).delete()
        for name, values in [
            ("parse (feedparser)", parse_ms),
            ("clean entries (nh3, text, URLs)", clean_ms),
            ("first read: clean + store all new", first_ms),
            ("re-read: clean + nothing changed", again_ms),
            ("every entry changed: clean + update", changed_ms),
        ]:
            figure(name, statistics.median(values), "ms")
        per_entry = (statistics.median(parse_ms) + statistics.median(first_ms)) / items
        figure("per entry, parse + first read", per_entry, "ms")
        summary.append(f"{items} entries {per_entry:.2f} ms/entry")
    print(f"\nsummary: {'; '.join(summary)}")


if __name__ == "__main__":
    main()
