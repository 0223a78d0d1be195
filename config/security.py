"""Content-Security-Policy for every response (Django 5.2 has none built in).

Readers' pages carry no script at all, so their policy allows none: anything that slipped past
escaping (an article title, a name) could not run. Images may come from any https address
(article pictures, the publication's logo); styles may be inline (the pages and the email
preview use style blocks).

The editors' admin gets the same policy except that inline scripts may run: Django's admin is
fine without, but the edition panel's confirm dialogs and progress refresh are inline.

``frame-ancestors`` follows the response's X-Frame-Options (set later in the middleware chain by
XFrameOptionsMiddleware or a view): ``DENY`` -> ``'none'``, ``SAMEORIGIN`` -> ``'self'``, so the
admin's email preview can still show in its own page's iframe. Browsers that know CSP obey
frame-ancestors and ignore X-Frame-Options, so the two must agree.
"""

from django.conf import settings

DEFAULT_POLICY: dict[str, str] = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' https: data:",
    "font-src": "'self' data:",
    "connect-src": "'self'",
    "frame-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
}
ADMIN_OVERRIDES: dict[str, str] = {"script-src": "'self' 'unsafe-inline'"}
FRAME_ANCESTORS = {"DENY": "'none'", "SAMEORIGIN": "'self'"}


def build_policy(directives: dict[str, str], frame_options: str = "DENY") -> str:
    parts = {**directives, "frame-ancestors": FRAME_ANCESTORS.get(frame_options.upper(), "'none'")}
    return "; ".join(f"{name} {value}" for name, value in parts.items())


class ContentSecurityPolicyMiddleware:
    """Sets Content-Security-Policy unless the view set its own. Settings:
    ``CONTENT_SECURITY_POLICY`` (directive -> sources) and ``CONTENT_SECURITY_POLICY_ADMIN``
    (directives replaced under the admin's URL prefix)."""

    def __init__(self, get_response):
        self.get_response = get_response
        policy = getattr(settings, "CONTENT_SECURITY_POLICY", DEFAULT_POLICY)
        admin = {**policy, **getattr(settings, "CONTENT_SECURITY_POLICY_ADMIN", ADMIN_OVERRIDES)}
        self.policy, self.admin_policy = policy, admin
        self.admin_prefix = getattr(settings, "CONTENT_SECURITY_POLICY_ADMIN_PREFIX", "/admin/")

    def __call__(self, request):
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            directives = self.admin_policy if request.path.startswith(self.admin_prefix) else self.policy
            frame_options = response.get("X-Frame-Options", settings.X_FRAME_OPTIONS)
            response["Content-Security-Policy"] = build_policy(directives, frame_options)
        return response
