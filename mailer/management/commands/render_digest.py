"""Render an edition to a file, to look at it in a browser or an email client, and time it.

    python manage.py render_digest 42 --segment 3,7 --out edition.html

The file is the HTML a subscriber of that segment receives, personalised for a sample reader
(``--raw`` keeps the provider's merge placeholders). Nothing is stored or sent.
"""

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from mailer.models import Digest
from mailer.proofs import make_proof
from mailer.rendering import InvalidSegment, build_segment


class Command(BaseCommand):
    help = "Render an edition (one segment) to an HTML file and print how long compiling took."

    def add_arguments(self, parser):
        parser.add_argument("digest_id", type=int)
        parser.add_argument("--segment", default="", help='Topic ids joined by commas ("" = all topics).')
        parser.add_argument("--out", help="Where to write the HTML (default: digest-<id>.html).")
        parser.add_argument("--text", help="Also write the plain-text part to this file.")
        parser.add_argument("--raw", action="store_true", help="Keep the merge placeholders.")

    def handle(
        self, *args, digest_id: int, segment: str, out: str | None, text: str | None, raw: bool, **options
    ):
        digest = Digest.objects.filter(pk=digest_id).first()
        if digest is None:
            raise CommandError(f"There is no edition {digest_id}.")
        started = time.perf_counter()
        try:
            result = build_segment(digest, segment) if raw else make_proof(digest, segment_key=segment)
        except InvalidSegment as exc:
            raise CommandError(f"--segment: {exc}") from exc
        elapsed_ms = (time.perf_counter() - started) * 1000
        if not result.article_count:
            raise CommandError("No article of this edition is in that segment's topics: nothing to render.")
        path = Path(out or f"digest-{digest.pk}.html")
        path.write_text(result.html, encoding="utf-8")
        if text:
            Path(text).write_text(result.text, encoding="utf-8")
        self.stdout.write(
            f"rendered edition {digest.pk} [{segment or 'all topics'}]: {result.article_count} articles, "
            f"{len(result.html.encode()) / 1024:.1f} KB HTML, {len(result.text.encode()) / 1024:.1f} KB text "
            f"in {elapsed_ms:.1f} ms -> {path}"
        )
