"""Rendering: milliseconds per MJML compilation of a digest of 1, 10 and 50 articles (and the
whole segment render around it: Django template, MJML, plain text), and the per-recipient
personalisation cost: merge data (three signed links, escaped name) and the List-Unsubscribe
header that go into the batch call, against filling a whole body locally for comparison.

    bin/bench render [--repeat 20] [--recipients 20000]

No database and no network: the digest and its articles are built in memory.
"""

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import figure, heading, setup_django


def make_articles(count: int):
    from mailer.models import Article
    from mailer.rendering import article_view

    return [
        article_view(
            Article(
                guid=f"https://news.example.com/?p={n}",
                url=f"https://news.example.com/2026/article-{n}/",
                title=f"Council approves the new riverside park, article {n}",
                excerpt="<p>" + "The plan adds trees, paths and a playground along the water. " * 4 + "</p>",
                image_url=f"https://news.example.com/images/{n}.jpg",
                author="Sam Reporter",
            ),
            set(),
        )
        for n in range(count)
    ]


def time_compilations(articles: int, repeat: int) -> tuple[float, float, int]:
    """Median milliseconds of (the MJML compilation, the whole segment render), and HTML bytes."""
    from mailer import rendering
    from mailer.models import Digest

    digest = Digest(subject="The Riverside Courier: Wednesday", intro="Good morning.")
    views = make_articles(articles)
    compile_times: list[float] = []
    original = rendering._compile

    def timed(source: str) -> str:
        started = time.perf_counter()
        try:
            return original(source)
        finally:
            compile_times.append(time.perf_counter() - started)

    rendering._compile = timed
    totals = []
    try:
        for _ in range(repeat):
            started = time.perf_counter()
            content = rendering.build_segment(digest, "", views)
            totals.append(time.perf_counter() - started)
    finally:
        rendering._compile = original
    return statistics.median(compile_times) * 1000, statistics.median(totals) * 1000, len(content.html)


def time_personalisation(recipients: int) -> tuple[float, float, float]:
    """Microseconds per recipient: merge data; merge data plus the List-Unsubscribe header (what
    each recipient adds to a batch call); filling a 10-article body locally instead."""
    from mailer import rendering
    from mailer.models import Digest
    from subscribers.headers import list_unsubscribe

    readers = [(uuid.uuid4(), f"Reader {n}" if n % 3 else "") for n in range(recipients)]
    started = time.perf_counter()
    for subscriber_uuid, name in readers:
        rendering.recipient_merge_data(subscriber_uuid=subscriber_uuid, name=name, digest_id=42)
    merge = (time.perf_counter() - started) / recipients * 1e6

    started = time.perf_counter()
    for subscriber_uuid, name in readers:
        data = rendering.recipient_merge_data(subscriber_uuid=subscriber_uuid, name=name, digest_id=42)
        list_unsubscribe(data["one_click_url"])
    with_header = (time.perf_counter() - started) / recipients * 1e6

    content = rendering.build_segment(Digest(subject="Edition", intro="Hi."), "", make_articles(10))
    sample = readers[: min(recipients, 2000)]
    started = time.perf_counter()
    for subscriber_uuid, name in sample:
        data = rendering.recipient_merge_data(subscriber_uuid=subscriber_uuid, name=name, digest_id=42)
        rendering.apply_merge_data(content.html, data)
        rendering.apply_merge_data(content.text, data)
    local = (time.perf_counter() - started) / len(sample) * 1e6
    return merge, with_header, local


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=20, help="compilations per size (median shown)")
    parser.add_argument("--recipients", type=int, default=20_000, help="recipients personalised")
    args = parser.parse_args(argv)
    setup_django()

    heading("MJML compilation (median)")
    results = {}
    for articles in (1, 10, 50):
        compile_ms, total_ms, size = time_compilations(articles, args.repeat)
        results[articles] = compile_ms
        figure(
            f"{articles} article{'s' if articles > 1 else ''}",
            f"{compile_ms:.2f} ms per compilation ({total_ms:.2f} ms the whole segment render, "
            f"HTML {size / 1024:.0f} KB)",
        )

    heading("per-recipient personalisation")
    merge, with_header, local = time_personalisation(args.recipients)
    figure("merge data", f"{merge:.1f} µs per recipient (three signed links, escaped name)")
    figure(
        "merge data + List-Unsubscribe header", f"{with_header:.1f} µs per recipient (what a batch call adds)"
    )
    figure("filling a 10-article body locally instead", f"{local:.1f} µs per recipient (for comparison)")
    print(
        "\nsummary: render "
        + " ".join(f"mjml_{n}={ms:.2f}ms" for n, ms in results.items())
        + f" personalise={with_header:.1f}us local_fill={local:.1f}us",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
