"""Create a CMS API source and print its token (the only time it is shown)."""

from django.core.management.base import BaseCommand, CommandError

from mailer.articles import create_api_source
from mailer.sanitize import plain_text


class Command(BaseCommand):
    help = "Create an API source for a CMS and print its bearer token once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="What the source is, e.g. 'WordPress'.")

    def handle(self, *args, name: str, **options):
        name = plain_text(name, max_length=100)
        if not name:
            raise CommandError("The name has no text.")
        source, token = create_api_source(name)
        self.stderr.write(
            f"Created API source #{source.pk} {source.name!r}. Store this token now; it is not shown again:"
        )
        self.stdout.write(token)
