"""Editors' screens for CSV import and export of subscribers, next to the subscriber list.

- ``/admin/subscribers/subscriber/import/``: upload a CSV and state the consent basis; the file
  is checked first (a dry run: what would be created, updated, left alone, and every row error
  with its line), then imported in one transaction when the editor confirms. The checked file
  waits in the cache (Redis) between the two steps, tied to the editor who uploaded it; a large
  one is imported by a worker while ``import/<token>/`` shows the progress.
- ``/admin/subscribers/subscriber/export/?<the list's query string>``: the subscribers the list
  shows with the same filters and search, as a streamed CSV.

The URLs are mounted in ``config/urls.py`` ahead of the admin's own.
"""

import io
import secrets

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_GET, require_http_methods

from subscribers import exports, import_jobs
from subscribers.imports import ConsentBasis, ImportRefused, import_subscribers
from subscribers.models import Subscriber

# Larger files go through ``manage.py import_subscribers`` (a progress bar, no request timeout).
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
# A checked file with more rows than this is imported by a worker, with a progress page.
BACKGROUND_ROWS = 5000


class ImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="A header row with email, and optionally name, topics (slugs separated by ;) and frequency.",
    )
    basis = forms.ChoiceField(
        label="Consent",
        choices=ConsentBasis.CHOICES,
        widget=forms.RadioSelect,
        initial=ConsentBasis.SEND_CONFIRMATION,
    )
    wording = forms.CharField(
        label="Where and how they agreed",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text="Kept in every imported reader's consent record. Required when they agreed elsewhere.",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB; "
                "import it with `python manage.py import_subscribers` instead."
            )
        return upload

    def clean(self):
        data = super().clean()
        if (
            data.get("basis") == ConsentBasis.CONFIRMED_ELSEWHERE
            and len(data.get("wording", "").strip()) < 10
        ):
            self.add_error("wording", "Say where and how these readers agreed to receive the newsletter.")
        return data


def _model_admin():
    return admin.site._registry[Subscriber]


def _stash_key(request, token: str) -> str:
    return f"subscriber-import:{request.user.pk}:{token}"


def _context(request, **extra) -> dict:
    opts = Subscriber._meta
    return {
        **admin.site.each_context(request),
        "opts": opts,
        "title": "Import subscribers",
        "changelist_url": reverse("admin:subscribers_subscriber_changelist"),
        **extra,
    }


def import_view(request):
    model_admin = _model_admin()
    if not (model_admin.has_add_permission(request) and model_admin.has_change_permission(request)):
        raise PermissionDenied
    template = "admin/subscribers/subscriber/import.html"
    if request.method == "POST" and "token" in request.POST:
        return _import_checked(request, template)
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method != "POST" or not form.is_valid():
        return TemplateResponse(
            request, template, _context(request, form=form), status=400 if form.errors else 200
        )
    content = form.cleaned_data["file"].read()
    basis, wording = form.cleaned_data["basis"], form.cleaned_data["wording"]
    try:
        report = import_subscribers(io.BytesIO(content), basis=basis, wording=wording, dry_run=True)
    except ImportRefused as exc:
        form.add_error("file", str(exc))
        return TemplateResponse(request, template, _context(request, form=form), status=400)
    token = ""
    if report.ok:
        token = secrets.token_urlsafe(16)
        import_jobs.stash(
            _stash_key(request, token),
            content=content,
            basis=basis,
            wording=wording,
            name=form.cleaned_data["file"].name,
            rows=report.rows,
        )
    return TemplateResponse(
        request,
        template,
        _context(request, form=form, report=report, token=token, filename=form.cleaned_data["file"].name),
        status=200 if report.ok else 400,
    )


def _import_checked(request, template):
    token = request.POST.get("token", "")[:64]
    key = _stash_key(request, token)
    found = import_jobs.checked(key)
    if found is None:
        messages.error(
            request, "The checked file is no longer waiting (it expires after 30 minutes); upload it again."
        )
        return redirect("subscriber_import")
    if found["rows"] > BACKGROUND_ROWS:
        # A worker imports it while the editor watches the progress (no request timeout).
        import_jobs.queue(key)
        return redirect("subscriber_import_progress", token=token)
    try:
        report = import_subscribers(
            io.BytesIO(found["content"]), basis=found["basis"], wording=found["wording"]
        )
    except ImportRefused as exc:
        messages.error(request, str(exc))
        return redirect("subscriber_import")
    cache.delete(key)
    if not report.committed:  # the database changed since the check and a row no longer fits
        form = ImportForm(initial={"basis": found["basis"], "wording": found["wording"]})
        return TemplateResponse(
            request, template, _context(request, form=form, report=report, filename=found["name"]), status=400
        )
    messages.success(request, f"{report.summary()} (file: {found['name']})")
    return redirect("admin:subscribers_subscriber_changelist")


def progress_view(request, token: str):
    """The progress of a background import: a page that follows it, or JSON with ?format=json."""
    if not _model_admin().has_add_permission(request):
        raise PermissionDenied
    state = import_jobs.progress(_stash_key(request, token[:64]))
    if state is None:
        if request.GET.get("format") == "json":
            return JsonResponse({"error": "No such import."}, status=404)
        raise Http404("No such import.")
    state = {**state, "percent": round(100.0 * state["rows"] / state["total"], 1) if state["total"] else 0.0}
    if request.GET.get("format") == "json":
        return JsonResponse(state)
    return TemplateResponse(
        request,
        "admin/subscribers/subscriber/import_progress.html",
        _context(request, progress=state, title="Importing subscribers"),
    )


def export_view(request):
    """The list's filters and search come in the query string, exactly as the list has them."""
    model_admin = _model_admin()
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    try:
        changelist = model_admin.get_changelist_instance(request)
    except IncorrectLookupParameters:
        return HttpResponseBadRequest(
            "These list filters are not valid; go back to the list and filter again."
        )
    queryset = changelist.get_queryset(request)
    return exports.streaming_response(queryset)


urlpatterns = [
    path(
        "import/",
        admin.site.admin_view(require_http_methods(["GET", "POST"])(import_view)),
        name="subscriber_import",
    ),
    path("export/", admin.site.admin_view(require_GET(export_view)), name="subscriber_export"),
    path(
        "import/<str:token>/",
        admin.site.admin_view(require_GET(progress_view)),
        name="subscriber_import_progress",
    ),
]
