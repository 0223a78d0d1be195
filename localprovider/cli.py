"""Command line: ``python -m localprovider serve|list``."""

import argparse
import contextlib
import logging
import sys
from pathlib import Path

from .store import Store
from .webhooks import WebhookConfig


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m localprovider", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the provider")
    serve.add_argument("--port", type=int, default=8025, help="0 picks a free port (printed on stdout)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--db", required=True, help="SQLite file to record messages in")
    serve.add_argument("--api-key", default="local-provider-key")
    serve.add_argument("--webhook-url", default="", help="where to post tracking events (none: no events)")
    serve.add_argument("--webhook-signing-key", default="local-webhook-signing-key")
    serve.add_argument(
        "--webhook-auth",
        default="local:webhook-secret",
        help="basic auth user:password for the webhook, unless the URL carries its own",
    )
    serve.add_argument("--verbose", action="store_true", help="log every request")

    listing = commands.add_parser("list", help="print the latest messages recorded")
    listing.add_argument("--db", required=True)
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--to", default=None, help="only messages to this address")
    listing.add_argument("--subject", default=None, help="only messages whose subject contains this")
    return parser


def list_messages(db: str, *, limit: int, to: str | None, subject: str | None, out=sys.stdout) -> None:
    store = Store(db)
    messages = store.messages(to=to, subject=subject, limit=limit)
    for m in messages:
        tags = f"  [{', '.join(m['tags'])}]" if m["tags"] else ""
        print(
            f"{m['id']:>8}  {m['created_at'][:19].replace('T', ' ')}  {m['recipient']:<32}  {m['subject']}{tags}",
            file=out,
        )
    stats = store.stats()
    print(
        f"{len(messages)} shown; {stats['messages']} messages to {stats['unique_recipients']} recipients "
        f"in {stats['accepted_calls']} accepted calls ({stats['rejected_calls']} rejected, "
        f"{stats['idempotent_replays']} idempotent replays); {stats['duplicates']} duplicates",
        file=out,
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        if args.limit < 1:
            print("--limit must be at least 1", file=sys.stderr)
            return 2
        if not Path(args.db).is_file():
            print(f"no local provider database at {args.db}", file=sys.stderr)
            return 2
        list_messages(args.db, limit=args.limit, to=args.to, subject=args.subject)
        return 0

    from .server import serve  # the server needs werkzeug; listing does not

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.verbose else logging.WARNING)
    # Ctrl-C (bin/run stopping) ends the server quietly.
    with contextlib.suppress(KeyboardInterrupt):
        serve(
            host=args.host,
            port=args.port,
            db=args.db,
            api_key=args.api_key,
            webhooks=WebhookConfig(
                url=args.webhook_url, signing_key=args.webhook_signing_key, auth=args.webhook_auth
            ),
        )
    return 0
