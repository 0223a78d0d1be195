"""One sign-up attempt, shared by the page, the embeddable form and the JSON API: rate limit,
validate, honeypot, then put the sign-up in the inbox for the worker to store
(``subscribers.inbox``).

The request writes nothing and never looks the address up, so neither the answer nor the work
behind it (and so its timing) depends on whether the address is known; only bad input (400)
and too many attempts (429) differ."""

from dataclasses import dataclass

from django.conf import settings
from django.http import QueryDict
from django.utils import timezone
from django.utils.translation import gettext_lazy, ngettext

from subscribers import ratelimit, services, tasks
from subscribers.forms import SignupForm, consent_wording, error_summary
from subscribers.models import Frequency

ACCEPTED_MESSAGE = gettext_lazy(
    "Thank you! Please check your inbox: we have sent a link to confirm your subscription. "
    "Your subscription starts when you confirm it."
)


@dataclass
class SignupResult:
    status: int  # 202 accepted, 400 bad input, 429 too many attempts
    message: str
    form: SignupForm | None = None
    retry_after: int | None = None


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL or Origin header, lower-cased; "" if it has none."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep or not rest:
        return ""
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    return f"{scheme.lower()}://{host.lower()}" if host else ""


def allowed_origins() -> set[str]:
    return {origin_of(o) for o in [*settings.SIGNUP_CORS_ORIGINS, settings.SITE_URL]} - {""}


def request_origin(request) -> str:
    """The page the request came from, by Origin or else Referer; "" when neither is usable."""
    origin = request.META.get("HTTP_ORIGIN", "")
    if origin and origin != "null":
        return origin_of(origin)
    return origin_of(request.META.get("HTTP_REFERER", ""))


def handle_signup(request, data: QueryDict | dict, *, source: str) -> SignupResult:
    try:
        ratelimit.check_signup(request)
    except ratelimit.RateLimited as exc:
        minutes = max(1, round(exc.retry_after / 60))
        return SignupResult(
            429,
            ngettext(
                "Too many sign-ups from your network. Please try again in about %(minutes)d minute.",
                "Too many sign-ups from your network. Please try again in about %(minutes)d minutes.",
                minutes,
            )
            % {"minutes": minutes},
            retry_after=exc.retry_after,
        )
    data = data.copy()
    if not data.get("frequency"):
        data["frequency"] = Frequency.DAILY
    form = SignupForm(data)
    if form.is_bot:
        # Same answer as a real sign-up, nothing stored: a bot learns nothing.
        return SignupResult(202, ACCEPTED_MESSAGE, form=SignupForm())
    if not form.is_valid():
        return SignupResult(400, error_summary(form), form=form)
    signup = services.Signup(
        email=form.cleaned_data["email"],
        topic_ids=tuple(topic.pk for topic in form.cleaned_data["topics"]),
        frequency=form.cleaned_data["frequency"],
        name=form.cleaned_data["name"].strip(),
        consent=services.Consent(
            source=source,
            ip_address=ratelimit.client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
            wording=consent_wording(),
            at=timezone.now(),
        ),
    )
    tasks.queue_signup(signup.as_message())
    return SignupResult(202, ACCEPTED_MESSAGE, form=form)
