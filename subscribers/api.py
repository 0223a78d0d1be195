"""The JSON sign-up endpoint for the publisher's site: ``POST /api/subscribe`` with CORS for the
origins in SIGNUP_CORS_ORIGINS.

Request: ``{"email": "...", "topics": [1, 2], "frequency": "daily", "name": "..."}`` (only
email is required). Answers: 202 ``{"ok": true, "message": ...}`` whether or not the address
was known; 400 ``{"ok": false, "message": ..., "errors": {field: [message, ...]}}``; 429 with
``Retry-After``; 403 for a browser on another origin.
"""

import json

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from subscribers.models import ConsentRecord
from subscribers.signup import allowed_origins, handle_signup, origin_of

MAX_BODY_BYTES = 8 * 1024
FIELDS = ("email", "topics", "frequency", "name", "website")


def _cors(response, origin: str):
    response["Vary"] = "Origin"
    if origin:
        response["Access-Control-Allow-Origin"] = origin
    return response


def _error(status: int, message: str, origin: str, errors: dict | None = None):
    body = {"ok": False, "message": message}
    if errors is not None:
        body["errors"] = errors
    return _cors(JsonResponse(body, status=status), origin)


# Not CSRF-protected by token: a browser can only send this JSON cross-site after a preflight
# that we answer for allowed origins only, and a browser's Origin is checked below.
@csrf_exempt
def subscribe(request):
    raw_origin = request.META.get("HTTP_ORIGIN", "")
    origin = origin_of(raw_origin) if raw_origin else ""
    allowed = origin if origin in allowed_origins() else ""
    if request.method == "OPTIONS":
        response = _cors(HttpResponse(status=204), allowed)
        if allowed:
            response["Access-Control-Allow-Methods"] = "POST, OPTIONS"
            response["Access-Control-Allow-Headers"] = "Content-Type"
            response["Access-Control-Max-Age"] = "86400"
        return response
    if request.method != "POST":
        response = _error(405, "Use POST with a JSON body.", allowed)
        response["Allow"] = "POST, OPTIONS"
        return response
    if raw_origin and not allowed:
        return _error(403, "This site may not use the sign-up API.", "")
    if request.content_type != "application/json":
        return _error(415, "Send the sign-up as JSON (Content-Type: application/json).", allowed)
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not declared.isdigit() or int(declared) > MAX_BODY_BYTES or len(request.body) > MAX_BODY_BYTES:
        return _error(400, f"The request body is larger than {MAX_BODY_BYTES} bytes.", allowed)
    try:
        payload = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return _error(400, "The request body is not valid JSON.", allowed)
    if not isinstance(payload, dict):
        return _error(400, "The request body must be a JSON object with at least an email.", allowed)
    data = {key: payload[key] for key in FIELDS if key in payload and payload[key] is not None}
    for key in ("email", "frequency", "name", "website"):
        if key in data and not isinstance(data[key], str):
            return _error(400, f"{key}: must be a string.", allowed, {key: ["must be a string."]})
    result = handle_signup(request, data, source=ConsentRecord.Source.API)
    if result.status == 400:
        errors = {field: [str(m) for m in messages] for field, messages in result.form.errors.items()}
        return _error(400, result.message, allowed, errors)
    response = JsonResponse({"ok": result.status == 202, "message": result.message}, status=result.status)
    if result.retry_after is not None:
        response["Retry-After"] = str(result.retry_after)
    return _cors(response, allowed)
