"""Admin: editions (digests) and their schedules, made for editors.

An edition's page shows where it stands and what can be done with it: choose and order its
articles, preview it as a subscriber sees it, send a test, schedule, send now, cancel, pause,
resume, retry the failed, and follow the send. Every button is a POST (with CSRF) to a small
view that calls one service; what cannot be done gets a 4xx page that says why.
"""

from datetime import datetime
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from mailer import digests, proofs, schedules
from mailer.models import Digest, DigestArticle, Schedule
from mailer.rendering import InvalidSegment, parse_segment_key, segment_key_for
from subscribers.models import Frequency, Topic

S = Digest.Status
FIGURE_KEYS = ("delivered", "bounced", "complained", "opened", "clicked", "unsubscribed")


class ActionRefused(Exception):
    """Bad input (400) or a state that does not allow the action (409)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def publisher_zone() -> ZoneInfo:
    return schedules.zone(settings.PUBLICATION_TIME_ZONE)


def edition_figures(digest_id: int) -> dict | None:
    """Delivery's figures for an edition, or None while that part is not installed."""
    try:
        from mailer.selectors import edition_figures as figures
    except ImportError:
        return None
    return figures(digest_id)


def sending_controls():
    """Delivery's controls (pause, resume, retry), imported when used."""
    try:
        from mailer import sending
    except ImportError as exc:
        raise ActionRefused("Sending controls are not available in this installation.", 501) from exc
    return sending


# --- Forms ---------------------------------------------------------------------------------------


class DigestForm(forms.ModelForm):
    class Meta:
        model = Digest
        fields = ["subject", "preview_text", "intro", "frequency"]
        help_texts = {
            "preview_text": "Shown after the subject in most inboxes. Empty: the first headlines.",
            "frequency": "Which subscribers receive it (daily, weekly, or instant alerts).",
        }


class ScheduleEditionForm(forms.Form):
    when = forms.DateTimeField(
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"],
        error_messages={"invalid": "Enter a date and time, e.g. 2026-11-26 07:00."},
    )

    def clean_when(self) -> datetime:
        return self.cleaned_data["when"]

    def full_clean(self):
        # Naive times are the publisher's wall clock; a time a DST change makes ambiguous or
        # non-existent is refused with a message by Django's own check.
        with timezone.override(publisher_zone()):
            super().full_clean()


class ProofForm(forms.Form):
    to = forms.CharField(max_length=400)
    segment = forms.CharField(max_length=255, required=False)


def clean_segment(value: str) -> str:
    """A segment key of existing topics, or ActionRefused (400)."""
    try:
        ids = parse_segment_key((value or "").strip())
    except InvalidSegment as exc:
        raise ActionRefused("Choose topics from the list.") from exc
    if ids and Topic.objects.filter(pk__in=ids).count() != len(ids):
        raise ActionRefused("Some of the chosen topics do not exist.")
    return segment_key_for(ids)


class ScheduleForm(forms.ModelForm):
    class Meta:
        model = Schedule
        fields = ["name", "frequency", "weekday", "send_time", "time_zone", "subject_template", "is_active"]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("frequency") == Frequency.WEEKLY and cleaned.get("weekday") is None:
            self.add_error("weekday", "A weekly schedule needs a weekday.")
        if cleaned.get("frequency") == Frequency.DAILY:
            cleaned["weekday"] = None
        zone = cleaned.get("time_zone")
        if zone:
            try:
                schedules.zone(zone)
            except schedules.InvalidSchedule as exc:
                self.add_error("time_zone", str(exc))
        return cleaned


# --- Editions ------------------------------------------------------------------------------------


class DigestArticleInline(admin.TabularInline):
    model = DigestArticle
    fields = ["position", "article", "published"]
    readonly_fields = ["published"]
    autocomplete_fields = ["article"]
    ordering = ["position", "id"]
    extra = 0
    verbose_name = "article"
    verbose_name_plural = "Articles (in this order; lower positions first)"

    @admin.display(description="published")
    def published(self, obj: DigestArticle) -> str:
        if not obj.pk:
            return ""
        return timezone.localtime(obj.article.published_at, publisher_zone()).strftime("%d %b %Y %H:%M")

    def _editable(self, obj) -> bool:
        return obj is None or obj.status == S.DRAFT

    def has_add_permission(self, request, obj=None):
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._editable(obj) and super().has_delete_permission(request, obj)


@admin.register(Digest)
class DigestAdmin(admin.ModelAdmin):
    form = DigestForm
    change_form_template = "admin/mailer/digest/change_form.html"
    inlines = [DigestArticleInline]
    list_display = ["subject", "status_badge", "frequency", "when", "article_count", "progress"]
    list_filter = ["status", "frequency", "schedule"]
    search_fields = ["subject"]
    date_hierarchy = "created_at"
    list_per_page = 50

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_articles=Count("digestarticle"))

    def has_delete_permission(self, request, obj=None):
        # An edition that started sending is the record of what went to whom: it stays.
        if obj is not None and obj.started_at is not None:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one at a time, through the guarded page
        return actions

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        if obj.status != S.DRAFT:
            return ["subject", "preview_text", "intro", "frequency"]
        return ["frequency"]

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Digest) -> str:
        colours = {S.SENDING: "#1f6feb", S.SENT: "#1a7f37", S.FAILED: "#cf222e", S.PAUSED: "#9a6700"}
        return format_html(
            '<strong style="color:{}">{}</strong>',
            colours.get(obj.status, "#57606a"),
            obj.get_status_display(),
        )

    @admin.display(description="when", ordering="scheduled_for")
    def when(self, obj: Digest) -> str:
        moment = obj.started_at or obj.scheduled_for
        if moment is None:
            return "—"
        return timezone.localtime(moment, publisher_zone()).strftime("%a %d %b %Y %H:%M")

    @admin.display(description="articles", ordering="n_articles")
    def article_count(self, obj: Digest) -> int:
        return obj.n_articles

    @admin.display(description="sent / total (failed)")
    def progress(self, obj: Digest) -> str:
        if obj.status in (S.DRAFT, S.SCHEDULED, S.CANCELLED, S.SKIPPED):
            return "—"
        figures = edition_figures(obj.pk)
        if figures is None:
            return "—"
        return f"{figures['sent']:,} / {figures['total']:,} ({figures['failed']:,})"

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        digest = form.instance
        if not change and not DigestArticle.objects.filter(digest=digest).exists():
            chosen = digests.default_articles(frequency=digest.frequency, until=timezone.now())
            digests.set_articles(digest, [a.pk for a in chosen])
            if chosen:
                messages.info(
                    request, f"{len(chosen)} articles published since the previous edition were added."
                )
            else:
                messages.warning(
                    request,
                    "No article was published since the previous edition: add articles below "
                    "before sending it.",
                )
        elif change:
            digest.renderings.all().delete()  # previews of the old content must not be reused

    # -- the edition's page ------------------------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        digest = self.get_object(request, unquote(object_id))
        extra_context = extra_context or {}
        if digest is not None:
            extra_context.update(self.panel_context(request, digest))
        return super().change_view(request, object_id, form_url, extra_context)

    def panel_context(self, request, digest: Digest) -> dict:
        zone = publisher_zone()
        figures = edition_figures(digest.pk) if digest.started_at else None
        try:
            deliveries = reverse("admin:mailer_delivery_changelist")
        except NoReverseMatch:  # delivery's admin is not registered yet: its agreed address
            deliveries = reverse("admin:index") + "mailer/delivery/"
        failed_url = f"{deliveries}?digest__id__exact={digest.pk}&status__exact=failed"
        return {
            "digest": digest,
            "figures": figures,
            "figure_keys": FIGURE_KEYS,
            "publisher_zone": zone.key,
            "scheduled_local": timezone.localtime(digest.scheduled_for, zone)
            if digest.scheduled_for
            else None,
            "topics": Topic.objects.all(),
            "proof_to": proof_address(request),
            "failed_url": failed_url,
            "can": {to: digest.can_move(to) for to in S.values},
            "can_change": self.has_change_permission(request, digest),
            "live": digest.status in (S.SENDING, S.PAUSED),
        }

    def get_urls(self):
        def route(suffix: str, view, name: str):
            return path(
                f"<path:object_id>/{suffix}/", self.admin_site.admin_view(view), name=f"mailer_digest_{name}"
            )

        actions = {
            "schedule": self.do_schedule,
            "send-now": self.do_send_now,
            "unschedule": self.do_unschedule,
            "cancel": self.do_cancel,
            "reopen": self.do_reopen,
            "pause": self.do_pause,
            "resume": self.do_resume,
            "retry-failed": self.do_retry_failed,
            "send-test": self.do_send_test,
            "add-new-articles": self.do_add_new_articles,
        }
        urls = [
            route("preview", self.preview_view, "preview"),
            route("preview/html", self.preview_html_view, "preview_html"),
            route("progress", self.progress_view, "progress"),
        ]
        for suffix, action in actions.items():
            urls.append(route(suffix, self.action_view(action), suffix.replace("-", "_")))
        return urls + super().get_urls()

    def _digest_or_404(self, request, object_id: str) -> Digest:
        digest = self.get_object(request, unquote(object_id))
        if digest is None:
            raise Http404("No such edition.")
        return digest

    def action_view(self, action):
        def view(request, object_id: str):
            if request.method != "POST":
                return HttpResponseNotAllowed(["POST"], "Use the buttons on the edition's page.")
            digest = self._digest_or_404(request, object_id)
            if not self.has_change_permission(request, digest):
                raise PermissionDenied
            try:
                done = action(request, digest)
            except (digests.EditionStateChanged, digests.EditionEmpty) as exc:
                return self.refused(request, digest, str(exc), 409)
            except (digests.EditionError, proofs.ProofError, InvalidSegment) as exc:
                return self.refused(request, digest, str(exc), 400)
            except ActionRefused as exc:
                return self.refused(request, digest, str(exc), exc.status)
            messages.success(request, done)
            return redirect("admin:mailer_digest_change", digest.pk)

        return view

    def refused(self, request, digest: Digest, message: str, status: int) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": "That could not be done",
            "digest": digest,
            "opts": self.opts,
            "message": message,
        }
        return TemplateResponse(request, "admin/mailer/digest/refused.html", context, status=status)

    def do_schedule(self, request, digest: Digest) -> str:
        form = ScheduleEditionForm(request.POST)
        if not form.is_valid():
            raise ActionRefused(" ".join(e for errors in form.errors.values() for e in errors))
        when = form.cleaned_data["when"]
        digests.schedule_edition(digest, when=when)
        local = timezone.localtime(when, publisher_zone())
        return f"Scheduled for {local:%A %d %B %Y at %H:%M} ({publisher_zone().key})."

    def do_add_new_articles(self, request, digest: Digest) -> str:
        if digest.status != S.DRAFT:
            raise ActionRefused("Only a draft can be changed.", 409)
        added = digests.add_new_articles(digest)
        return (
            f"{added} new article{'s' if added != 1 else ''} added at the end." if added else "Nothing new."
        )

    def do_send_now(self, request, digest: Digest) -> str:
        digests.send_now(digest)
        return "Sending has started."

    def do_unschedule(self, request, digest: Digest) -> str:
        digests.unschedule_edition(digest)
        return "Back to draft: it will not be sent until it is scheduled again."

    def do_cancel(self, request, digest: Digest) -> str:
        digests.cancel_edition(digest)
        return "Cancelled."

    def do_reopen(self, request, digest: Digest) -> str:
        digests.reopen_edition(digest)
        return "Reopened as a draft."

    def do_pause(self, request, digest: Digest) -> str:
        if not sending_controls().pause_edition(digest.pk):
            raise ActionRefused("Only an edition that is sending can be paused.", 409)
        return "Paused: batches already with the provider finish, no others start."

    def do_resume(self, request, digest: Digest) -> str:
        if not sending_controls().resume_edition(digest.pk):
            raise ActionRefused("Only a paused edition can be resumed.", 409)
        return "Resumed."

    def do_retry_failed(self, request, digest: Digest) -> str:
        if digest.status not in (S.SENT, S.FAILED, S.SENDING, S.PAUSED):
            raise ActionRefused("This edition has not been sent.", 409)
        count = sending_controls().retry_failed(digest.pk)
        if not count:
            raise ActionRefused("There are no failed recipients to send to again.", 409)
        return f"Sending again to {count:,} failed recipients."

    def do_send_test(self, request, digest: Digest) -> str:
        form = ProofForm(request.POST)
        if not form.is_valid():
            raise ActionRefused("Give one address to send the test to.")
        to = proofs.clean_address(form.cleaned_data["to"])
        segment = clean_segment(form.cleaned_data["segment"])
        proofs.send_proof(digest, to=to, segment_key=segment, name=sample_name(request))
        request.session[PROOF_TO_SESSION_KEY] = to  # offered again next time
        return f"A test was sent to {to}."

    # -- preview and progress (read only) ------------------------------------------------------

    def _viewable(self, request, object_id: str) -> Digest:
        digest = self._digest_or_404(request, object_id)
        if not self.has_view_permission(request, digest):
            raise PermissionDenied
        return digest

    def preview_view(self, request, object_id: str):
        digest = self._viewable(request, object_id)
        try:
            segment = clean_segment(",".join(request.GET.getlist("topic")))
        except ActionRefused as exc:
            return self.refused(request, digest, str(exc), 400)
        proof = proofs.make_proof(digest, segment_key=segment, name=sample_name(request))
        chosen = parse_segment_key(segment)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Preview: {digest.subject}",
            "opts": self.opts,
            "digest": digest,
            "proof": proof,
            "topics": Topic.objects.all(),
            "chosen": chosen,
            "segment": segment,
            "html_url": reverse("admin:mailer_digest_preview_html", args=[digest.pk]) + f"?segment={segment}",
            "proof_to": proof_address(request),
        }
        return TemplateResponse(request, "admin/mailer/digest/preview.html", context)

    def preview_html_view(self, request, object_id: str):
        digest = self._viewable(request, object_id)
        try:
            segment = clean_segment(request.GET.get("segment", ""))
        except ActionRefused as exc:
            return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
        proof = proofs.make_proof(digest, segment_key=segment, name=sample_name(request))
        body = proof.html or (
            "<!doctype html><p style='font-family:sans-serif'>No article of this edition is in these "
            "topics: subscribers who chose them do not receive it.</p>"
        )
        response = HttpResponse(body, content_type="text/html; charset=utf-8")
        # The email's HTML holds no script; make sure none would run inside the admin's origin.
        response["Content-Security-Policy"] = "script-src 'none'; object-src 'none'; base-uri 'none'"
        response["X-Frame-Options"] = "SAMEORIGIN"  # shown in the preview page's iframe
        return response

    def progress_view(self, request, object_id: str):
        digest = self._viewable(request, object_id)
        figures = edition_figures(digest.pk) if digest.started_at else None
        if figures:
            figures = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in figures.items()}
        return JsonResponse(
            {"status": digest.status, "status_display": digest.get_status_display(), "figures": figures}
        )


PROOF_TO_SESSION_KEY = "mailer_proof_to"


def proof_address(request) -> str:
    """Where "Send a test" goes unless changed: the address last used in this session, else the
    editor's own (an account made without an address, like the first login, starts empty)."""
    return request.session.get(PROOF_TO_SESSION_KEY) or request.user.email


def sample_name(request) -> str:
    return request.user.get_full_name() or request.user.get_username() or "Alex Reader"


# --- Schedules -----------------------------------------------------------------------------------


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    list_display = ["name", "frequency", "runs", "next_run", "last_run_at", "is_active"]
    list_filter = ["frequency", "is_active"]
    readonly_fields = ["next_run", "last_run_at"]

    @admin.display(description="runs")
    def runs(self, obj: Schedule) -> str:
        day = "every day" if obj.frequency != Frequency.WEEKLY else f"every {obj.get_weekday_display()}"
        return f"{day} at {obj.send_time:%H:%M} ({obj.time_zone})"

    @admin.display(description="next run", ordering="next_run_at")
    def next_run(self, obj: Schedule) -> str:
        if not obj.next_run_at:
            return "—"
        try:
            local = timezone.localtime(obj.next_run_at, schedules.zone(obj.time_zone))
        except schedules.InvalidSchedule:
            return "—"
        return f"{local:%a %d %b %Y %H:%M %Z}"

    def save_model(self, request, obj: Schedule, form, change):
        # Only a change of timing moves the next run: renaming a schedule a few seconds after
        # its run time, before the tick, must not skip today's edition.
        timing = {"frequency", "weekday", "send_time", "time_zone", "is_active"}
        if not change or obj.next_run_at is None or timing & set(form.changed_data):
            schedules.refresh_next_run(obj, now=timezone.now())
        super().save_model(request, obj, form, change)
