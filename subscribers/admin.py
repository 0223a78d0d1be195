"""Editors' screens for subscribers and topics. Actions call services."""

from django import forms
from django.contrib import admin, messages
from django.db.models import Count
from django.utils.html import format_html

from subscribers import services
from subscribers.addresses import InvalidAddress, normalise_email
from subscribers.models import ConsentRecord, Subscriber, Topic


class ConsentRecordInline(admin.TabularInline):
    model = ConsentRecord
    extra = 0
    can_delete = False
    fields = ("created_at", "action", "source", "ip_address", "user_agent", "wording")
    readonly_fields = fields
    ordering = ("created_at", "id")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class SubscriberForm(forms.ModelForm):
    class Meta:
        model = Subscriber
        fields = ("email", "name", "frequency", "topics", "language")

    def clean_email(self) -> str:
        # One spelling per mailbox, as on every other route (see subscribers/addresses.py).
        try:
            email = normalise_email(self.cleaned_data["email"])
        except InvalidAddress as exc:
            raise forms.ValidationError(str(exc)) from exc
        if Subscriber.objects.filter(email=email).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("A subscriber with this address already exists.")
        return email


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    form = SubscriberForm
    list_display = ("email", "name", "status", "frequency", "topic_list", "created_at", "confirmed_at")
    list_filter = ("status", "frequency", "topics")
    search_fields = ("email", "name", "=uuid")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")
    list_per_page = 50
    show_full_result_count = False  # a COUNT(*) over a million rows on every page is not free
    inlines = [ConsentRecordInline]
    actions = ["resend_confirmation", "unsubscribe_selected"]
    readonly_fields = (
        "uuid",
        "status",
        "mailing",
        "segment_key",
        "created_at",
        "confirmed_at",
        "unsubscribed_at",
        "confirmation_sent_at",
        "soft_bounces",
        "suppressed_reason",
        "last_email_error",
    )
    fieldsets = (
        (None, {"fields": ("email", "name", "frequency", "topics", "language")}),
        (
            "State",
            {
                "fields": (
                    "status",
                    "mailing",
                    "uuid",
                    "segment_key",
                    ("created_at", "confirmation_sent_at", "confirmed_at", "unsubscribed_at"),
                    ("soft_bounces", "suppressed_reason"),
                    "last_email_error",
                )
            },
        ),
    )
    filter_horizontal = ("topics",)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("topics")

    @admin.display(description="Topics")
    def topic_list(self, obj: Subscriber) -> str:
        return ", ".join(t.name for t in obj.topics.all()) or "all"

    @admin.display(description="Mailing")
    def mailing(self, obj: Subscriber) -> str:
        status = obj.status
        if status in (Subscriber.Status.BOUNCED, Subscriber.Status.COMPLAINED):
            why = "its mail bounced" if status == Subscriber.Status.BOUNCED else "its owner marked us as spam"
            return format_html(
                "<strong>Not mailed</strong>: {} ({}). New sign-ups for this address are accepted "
                "on the page as usual but get no confirmation email and no newsletter.",
                why,
                obj.suppressed_reason or "no reason given by the provider",
            )
        if status == Subscriber.Status.PENDING:
            return "Waiting for the reader to confirm; receives only the confirmation email."
        if status == Subscriber.Status.UNSUBSCRIBED:
            return "Unsubscribed: receives nothing until they sign up and confirm again."
        return "Receives the newsletter."

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # Editing topics here must keep segment_key in step, like every other route.
        obj = form.instance
        obj.set_topics(obj.topics.all())
        if not change or form.has_changed():
            services.record_editor_change(obj, editor=request.user.get_username(), created=not change)

    @admin.action(description="Resend the confirmation email (pending subscribers)")
    def resend_confirmation(self, request, queryset):
        queued = sum(
            services.resend_confirmation(s) for s in queryset.filter(status=Subscriber.Status.PENDING)
        )
        skipped = queryset.count() - queued
        self.message_user(request, f"Queued {queued} confirmation email(s).", messages.SUCCESS)
        if skipped:
            self.message_user(
                request,
                f"{skipped} subscriber(s) skipped: only pending subscribers confirm.",
                messages.WARNING,
            )

    @admin.action(description="Unsubscribe the selected subscribers")
    def unsubscribe_selected(self, request, queryset):
        consent = services.Consent(
            source=ConsentRecord.Source.ADMIN,
            wording=f"Unsubscribed by an editor ({request.user.get_username()}).",
        )
        done = sum(services.unsubscribe(s, consent=consent) for s in queryset.iterator(chunk_size=500))
        self.message_user(request, f"Unsubscribed {done} subscriber(s).", messages.SUCCESS)


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    list_display = ("name", "form_value", "slug", "position", "is_public", "subscriber_count")
    list_editable = ("position", "is_public")
    prepopulated_fields = {"slug": ("name",)}
    search_fields = ("name", "slug", "categories")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_subscribers=Count("subscribers"))

    # The value of the topic's checkbox in a sign-up form on the publisher's site (README).
    @admin.display(description="Form value (id)", ordering="pk")
    def form_value(self, obj: Topic) -> int:
        return obj.pk

    @admin.display(description="Subscribers", ordering="_subscribers")
    def subscriber_count(self, obj: Topic) -> int:
        return obj._subscribers
