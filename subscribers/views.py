"""Reader-facing pages: sign-up, confirm, preferences (with export and erase), unsubscribe.

Views parse input, call one service and pick the page. GET never changes anything: every link
from an email opens a page with a button, and the button POSTs.
"""

import json
from urllib.parse import urlsplit

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from subscribers import ratelimit, selectors, services
from subscribers.forms import EraseForm, PreferencesForm, SignupForm, consent_wording
from subscribers.models import ConsentRecord, Subscriber
from subscribers.signup import SignupResult, allowed_origins, handle_signup, origin_of, request_origin
from subscribers.tokens import InvalidToken, Purpose, make_token

ONE_CLICK_BODY = ("List-Unsubscribe", "One-Click")


def _consent(request, source: str, wording: str = "") -> services.Consent:
    return services.Consent(
        source=source,
        ip_address=ratelimit.client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
        wording=wording,
    )


def _signup_page(request, form: SignupForm, *, status: int = 200, message: str = "") -> HttpResponse:
    context = {"form": form, "consent_wording": consent_wording(), "error_message": message}
    return render(request, "subscribers/signup.html", context, status=status)


def _signup_answer(request, result: SignupResult, *, success) -> HttpResponse:
    if result.status == 429:
        response = render(request, "subscribers/rate_limited.html", {"message": result.message}, status=429)
        response["Retry-After"] = str(result.retry_after)
        return response
    if result.status == 400:
        return _signup_page(request, result.form, status=400, message=result.message)
    return success()


@require_safe
def signup(request):
    return _signup_page(request, SignupForm())


@require_http_methods(["GET", "HEAD", "POST"])
def subscribe(request):
    if request.method != "POST":
        return redirect("subscribers:signup")
    result = handle_signup(request, request.POST, source=ConsentRecord.Source.FORM)
    return _signup_answer(request, result, success=lambda: redirect("subscribers:thanks"))


@csrf_exempt  # a plain form on the publisher's site cannot carry our CSRF token; Origin stands in
@require_POST
def subscribe_embed(request):
    if request_origin(request) not in allowed_origins():
        return render(request, "subscribers/forbidden_origin.html", status=403)
    result = handle_signup(request, request.POST, source=ConsentRecord.Source.FORM)

    def back():
        target = request.POST.get("next", "")
        if target and origin_of(target) in allowed_origins() and "\n" not in target and "\r" not in target:
            parts = urlsplit(target)
            query = f"{parts.query}&subscribed=1" if parts.query else "subscribed=1"
            return HttpResponseRedirect(parts._replace(query=query).geturl())
        return redirect("subscribers:thanks")

    return _signup_answer(request, result, success=back)


@require_safe
def thanks(request):
    return render(request, "subscribers/thanks.html")


def _from_token(request, purpose: str, token: str) -> Subscriber | HttpResponse:
    """The subscriber a link names, or the page that says why the link does not work."""
    try:
        return selectors.subscriber_from_token(purpose, token)
    except InvalidToken as exc:
        template = "subscribers/link_expired.html" if exc.expired else "subscribers/link_invalid.html"
        context = {"purpose": purpose, "message": str(exc)}
        return render(request, template, context, status=410 if exc.expired else 400)
    except selectors.SubscriberGone as exc:
        return render(request, "subscribers/link_gone.html", {"message": str(exc)}, status=410)


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def confirm(request, token: str):
    subscriber = _from_token(request, Purpose.CONFIRM, token)
    if isinstance(subscriber, HttpResponse):
        return subscriber
    if request.method == "POST":
        services.confirm(subscriber, consent=_consent(request, ConsentRecord.Source.EMAIL))
        subscriber.refresh_from_db()
    if subscriber.status == Subscriber.Status.ACTIVE:
        return render(request, "subscribers/confirmed.html", {"subscriber": subscriber})
    if subscriber.status == Subscriber.Status.PENDING:
        return render(request, "subscribers/confirm.html", {"subscriber": subscriber})
    # Unsubscribed (or suppressed) since the link was sent: it must not bring them back.
    return render(request, "subscribers/link_expired.html", {"purpose": Purpose.CONFIRM}, status=410)


def _preferences_page(request, subscriber, *, form=None, erase_form=None, status=200, saved=False):
    form = form or PreferencesForm(
        initial={
            "topics": list(subscriber.topics.values_list("pk", flat=True)),
            "frequency": subscriber.frequency,
            "name": subscriber.name,
        }
    )
    context = {
        "subscriber": subscriber,
        "form": form,
        "erase_form": erase_form or EraseForm(),
        "saved": saved,
        "token": request.resolver_match.kwargs["token"],
        "unsubscribe_path": reverse(
            "subscribers:unsubscribe", args=[make_token(Purpose.UNSUBSCRIBE, subscriber.uuid)]
        ),
    }
    return render(request, "subscribers/preferences.html", context, status=status)


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def preferences(request, token: str):
    subscriber = _from_token(request, Purpose.PREFERENCES, token)
    if isinstance(subscriber, HttpResponse):
        return subscriber
    if request.method != "POST":
        return _preferences_page(request, subscriber, saved=request.GET.get("saved") == "1")
    form = PreferencesForm(request.POST)
    if not form.is_valid():
        return _preferences_page(request, subscriber, form=form, status=400)
    services.update_preferences(
        subscriber,
        topics=form.cleaned_data["topics"],
        frequency=form.cleaned_data["frequency"],
        name=form.cleaned_data["name"],
        consent=_consent(request, ConsentRecord.Source.EMAIL),
    )
    return HttpResponseRedirect(reverse("subscribers:preferences", args=[token]) + "?saved=1")


@never_cache
@require_POST
def export(request, token: str):
    subscriber = _from_token(request, Purpose.PREFERENCES, token)
    if isinstance(subscriber, HttpResponse):
        return subscriber
    body = json.dumps(services.export_data(subscriber), cls=DjangoJSONEncoder, indent=2)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="my-newsletter-data.json"'
    response["Cache-Control"] = "no-store"
    return response


@require_POST
def erase(request, token: str):
    subscriber = _from_token(request, Purpose.PREFERENCES, token)
    if isinstance(subscriber, HttpResponse):
        return subscriber
    erase_form = EraseForm(request.POST)
    if not erase_form.is_valid():
        return _preferences_page(request, subscriber, erase_form=erase_form, status=400)
    services.erase(subscriber)
    return render(request, "subscribers/erased.html")


def _digest_id(request) -> int | None:
    raw = request.GET.get("d", "")
    # Only credits an edition; a mangled value is dropped rather than refusing the unsubscribe.
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request, token: str):
    subscriber = _from_token(request, Purpose.UNSUBSCRIBE, token)
    if isinstance(subscriber, HttpResponse):
        return subscriber
    digest_id = _digest_id(request)
    if request.method == "POST":
        services.unsubscribe(
            subscriber, consent=_consent(request, ConsentRecord.Source.EMAIL), digest_id=digest_id
        )
        subscriber.refresh_from_db()
    if request.method == "POST" or subscriber.status not in (
        Subscriber.Status.PENDING,
        Subscriber.Status.ACTIVE,
    ):
        context = {
            "subscriber": subscriber,
            "topic_ids": list(subscriber.topics.values_list("pk", flat=True)),
            "consent_wording": consent_wording(),
        }
        return render(request, "subscribers/unsubscribed.html", context)
    action = reverse("subscribers:unsubscribe", args=[token])
    if digest_id is not None:
        action += f"?d={digest_id}"
    return render(request, "subscribers/unsubscribe.html", {"subscriber": subscriber, "action": action})


@csrf_exempt  # RFC 8058: mail clients POST without a session; the signed token authenticates
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def one_click(request, token: str):
    if request.method != "POST":
        # Scanners and people who open the URL get the normal page; nothing changes on GET.
        return unsubscribe(request, token)
    try:
        subscriber = selectors.subscriber_from_token(Purpose.UNSUBSCRIBE, token)
    except InvalidToken as exc:
        return HttpResponse(f"{exc} Nothing was changed.", status=400, content_type="text/plain")
    except selectors.SubscriberGone:
        return HttpResponse("You are not subscribed.", content_type="text/plain")
    if request.POST.get(ONE_CLICK_BODY[0]) != ONE_CLICK_BODY[1]:
        return HttpResponse(
            "The request body must be List-Unsubscribe=One-Click (RFC 8058). Nothing was changed.",
            status=400,
            content_type="text/plain",
        )
    services.unsubscribe(
        subscriber,
        consent=_consent(request, ConsentRecord.Source.EMAIL, "One-click unsubscribe (RFC 8058)."),
        digest_id=_digest_id(request),
    )
    return HttpResponse("You have been unsubscribed.", content_type="text/plain")
