"""The local provider's HTTP application: Mailgun's messages endpoint plus the inbox and the
control API used by tests and benchmarks."""

import hmac
import json
import logging
import re
import secrets
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime

from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from . import pages
from .faults import FaultInjector, Faults, InvalidFaults
from .forms import FastFormDataParser
from .mailgun import Rejected, Submission, parse_submission
from .store import Accepted, Store
from .webhooks import MARK_EVENTS, WebhookConfig, WebhookDispatcher

log = logging.getLogger("localprovider")

MAX_LIMIT = 100_000
_DOMAIN = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$"
)


class ProviderRequest(Request):
    # A 1,000-recipient call has over 1,000 form fields and a large recipient-variables part.
    max_content_length = 64 * 1024 * 1024
    max_form_memory_size = 64 * 1024 * 1024
    max_form_parts = 20_000
    form_data_parser_class = FastFormDataParser


def json_response(data: object, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json", headers=headers)


def error(status: int, message: str) -> Response:
    headers = {"Retry-After": "1"} if status in (429, 503) else None
    return json_response({"message": message}, status, headers)


class BadInput(Exception):
    """A control API request that cannot be understood (answered 400)."""


class LocalProvider:
    """The WSGI application. One instance owns the store, faults and webhook dispatcher."""

    def __init__(self, store: Store, *, api_key: str, webhooks: WebhookConfig):
        self.store = store
        self.api_key = api_key
        self.initial_webhooks = webhooks
        self.faults = FaultInjector()
        self.dispatcher = WebhookDispatcher(store, replace(webhooks))
        self.urls = Map(
            [
                Rule("/v3/<domain>/messages", endpoint="send", methods=["POST"]),
                Rule("/", endpoint="inbox", methods=["GET"]),
                Rule("/messages/<int:message_id>", endpoint="message_page", methods=["GET"]),
                Rule("/api/messages", endpoint="messages", methods=["GET"]),
                Rule("/api/messages/<int:message_id>", endpoint="message_json", methods=["GET"]),
                Rule("/api/stats", endpoint="stats", methods=["GET"]),
                Rule("/api/reset", endpoint="reset", methods=["POST"]),
                Rule("/api/faults", endpoint="get_faults", methods=["GET"]),
                Rule("/api/faults", endpoint="set_faults", methods=["POST"]),
                Rule("/api/marks", endpoint="get_marks", methods=["GET"]),
                Rule("/api/marks", endpoint="set_mark", methods=["POST"]),
                Rule("/api/config", endpoint="get_config", methods=["GET"]),
                Rule("/api/config", endpoint="set_config", methods=["POST"]),
            ],
            strict_slashes=False,
        )

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        request = ProviderRequest(environ)
        adapter = self.urls.bind_to_environ(environ)
        try:
            endpoint, args = adapter.match()
            response = getattr(self, f"on_{endpoint}")(request, **args)
        except BadInput as exc:
            response = error(400, str(exc))
        except HTTPException as exc:
            response = error(exc.code or 500, exc.description or exc.name)
        # The provider's own time for the call (the benchmark reports it next to the round trip).
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response(environ, start_response)

    # --- Mailgun's messages endpoint -------------------------------------------------------
    def _authorised(self, request: Request) -> bool:
        auth = request.authorization
        if auth is None or auth.type != "basic":
            return False
        return auth.username == "api" and hmac.compare_digest(
            (auth.password or "").encode(), self.api_key.encode()
        )

    def on_send(self, request: Request, domain: str) -> Response:
        if not self._authorised(request):
            self.store.count_rejected(401)
            return Response("Forbidden", status=401, headers={"WWW-Authenticate": 'Basic realm="MG API"'})
        if not _DOMAIN.match(domain):
            # Mailgun's answer for a sending domain it does not know (Anymail explains it).
            self.store.count_rejected(404)
            return error(404, f"Domain not found: {domain}")
        decision = self.faults.decide()
        if decision.latency:
            time.sleep(decision.latency)
        if decision.status:
            self.store.count_rejected(decision.status)
            return error(decision.status, _fault_message(decision.status))
        try:
            submission = parse_submission(domain, request.form)
        except Rejected as exc:
            self.store.count_rejected(exc.status)
            return error(exc.status, exc.message)
        if decision.hang:
            if decision.record_before_hang:
                self._record(submission, answered=504)
            else:
                self.store.count_rejected(504)
            time.sleep(decision.hang)
            return error(504, "Gateway timeout")
        answered = 500 if decision.accept_then_fail else 200
        accepted = self._record(submission, answered=answered)
        if decision.accept_then_fail and not accepted.replayed:
            return error(500, "Internal server error")
        return json_response({"id": accepted.message_id, "message": "Queued. Thank you."})

    def _record(self, submission: Submission, *, answered: int) -> Accepted:
        message_id = f"<{datetime.now(UTC):%Y%m%d%H%M%S}.{secrets.token_hex(8)}@{submission.domain}>"
        accepted = self.store.accept(submission, message_id, answered=answered)
        if not accepted.replayed:
            self.dispatcher.enqueue(accepted.call_id)
        return accepted

    # --- reading ---------------------------------------------------------------------------
    def on_inbox(self, request: Request) -> Response:
        to = request.args.get("to", "").strip()
        subject = request.args.get("subject", "").strip()
        messages = self.store.messages(to=to or None, subject=subject or None, limit=100)
        html = pages.inbox(messages, self.store.stats(), to, subject)
        return Response(
            html, mimetype="text/html", headers={"Content-Security-Policy": pages.CONTENT_SECURITY_POLICY}
        )

    def on_message_page(self, request: Request, message_id: int) -> Response:
        message = self.store.message(message_id)
        if message is None:
            raise NotFound("No such message.")
        return Response(
            pages.message(message),
            mimetype="text/html",
            headers={"Content-Security-Policy": pages.CONTENT_SECURITY_POLICY},
        )

    def on_messages(self, request: Request) -> Response:
        try:
            limit = int(request.args.get("limit", "100"))
        except ValueError:
            raise BadInput("limit must be a whole number") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise BadInput(f"limit must be between 1 and {MAX_LIMIT}")
        messages = self.store.messages(
            to=request.args.get("to") or None, subject=request.args.get("subject") or None, limit=limit
        )
        return json_response(messages)

    def on_message_json(self, request: Request, message_id: int) -> Response:
        message = self.store.message(message_id)
        if message is None:
            raise NotFound("No such message.")
        return json_response(message)

    def on_stats(self, request: Request) -> Response:
        stats = self.store.stats()
        return json_response({**stats, **self.dispatcher.figures()})

    # --- control ---------------------------------------------------------------------------
    def on_reset(self, request: Request) -> Response:
        """Empty the store, clear faults and marks, restore the webhook settings given at start."""
        self.faults.set(Faults())
        self.dispatcher.reset(replace(self.initial_webhooks))
        self.store.reset()
        return json_response({"message": "Reset."})

    def on_get_faults(self, request: Request) -> Response:
        return json_response(self.faults.faults.as_dict())

    def on_set_faults(self, request: Request) -> Response:
        try:
            faults = Faults.parse(_json_body(request))
        except InvalidFaults as exc:
            raise BadInput(str(exc)) from None
        self.faults.set(faults)
        return json_response(faults.as_dict())

    def on_get_marks(self, request: Request) -> Response:
        return json_response(self.store.marks())

    def on_set_mark(self, request: Request) -> Response:
        data = _json_body(request)
        address, event = data.get("address"), data.get("event")
        if not isinstance(address, str) or "@" not in address:
            raise BadInput("address must be an email address")
        if event not in (*MARK_EVENTS, "delivered", None):
            raise BadInput(f"event must be one of: {', '.join(MARK_EVENTS)} (or delivered to clear)")
        self.store.set_mark(address.strip(), None if event in ("delivered", None) else event)
        return json_response({"address": address.strip().lower(), "event": event or "delivered"})

    def on_get_config(self, request: Request) -> Response:
        config = self.dispatcher.config
        return json_response({"webhook_url": config.url, "webhook_auth": bool(config.auth)})

    def on_set_config(self, request: Request) -> Response:
        data = _json_body(request)
        unknown = sorted(set(data) - {"webhook_url", "webhook_signing_key", "webhook_auth"})
        if unknown:
            raise BadInput(f"unknown setting(s): {', '.join(unknown)}")
        for name in data:
            if not isinstance(data[name], str):
                raise BadInput(f"{name} must be a string")
        url = data.get("webhook_url", self.dispatcher.config.url)
        if url and not url.startswith(("http://", "https://")):
            raise BadInput("webhook_url must be an http(s) URL")
        config = WebhookConfig(
            url=url,
            signing_key=data.get("webhook_signing_key", self.dispatcher.config.signing_key),
            auth=data.get("webhook_auth", self.dispatcher.config.auth),
        )
        self.dispatcher.config = config
        return json_response({"webhook_url": config.url, "webhook_auth": bool(config.auth)})


def _json_body(request: Request) -> dict:
    try:
        data = json.loads(request.get_data(as_text=True) or "{}")
    except ValueError:
        raise BadInput("the body must be JSON") from None
    if not isinstance(data, dict):
        raise BadInput("the body must be a JSON object")
    return data


def _fault_message(status: int) -> str:
    return {
        429: "Too many requests",
        500: "Internal server error",
        502: "Bad gateway",
        503: "Service unavailable",
        504: "Gateway timeout",
    }.get(status, "Injected fault")


def serve(*, host: str, port: int, db: str, api_key: str, webhooks: WebhookConfig, ready=print) -> None:
    """Run the provider until interrupted; ``ready`` gets the line naming the bound address."""
    app = LocalProvider(Store(db), api_key=api_key, webhooks=webhooks)
    server = make_server(host, port, app, threaded=True)
    # One line on stdout, so a parent process started with --port 0 learns the port.
    ready(f"localprovider listening on http://{host}:{server.server_port}", flush=True)
    thread = threading.current_thread()
    thread.name = "localprovider"
    try:
        server.serve_forever()
    finally:
        server.server_close()
