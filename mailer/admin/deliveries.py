"""Admin: the delivery ledger, read-only. Who an edition went to, who failed and why, and the
provider calls (batches) it took. Editors act on editions (pause, resume, retry the failed) from
the edition's page; these lists are where they look things up."""

from django.contrib import admin
from django.utils.html import format_html

from mailer.models import Batch, Delivery


class ReadOnlyAdmin(admin.ModelAdmin):
    """The ledger is written by the delivery engine only."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["recipient", "digest", "status", "error", "sent_at", "engagement", "batch_number"]
    list_filter = [("digest", admin.RelatedOnlyFieldListFilter), "status"]
    search_fields = ["subscriber__email"]
    list_select_related = ["subscriber", "digest", "batch"]
    ordering = ["-id"]
    # Counting a table of millions of rows for the "x of y" line is not worth its time.
    show_full_result_count = False
    list_per_page = 100
    fields = [
        "digest",
        "subscriber",
        "batch",
        "status",
        "error",
        "message_id",
        "sent_at",
        "delivered_at",
        "opened_at",
        "clicked_at",
        "bounced_at",
        "complained_at",
        "unsubscribed_at",
    ]

    @admin.display(description="Recipient", ordering="subscriber__email")
    def recipient(self, obj: Delivery) -> str:
        return obj.subscriber.email if obj.subscriber else "(erased)"

    @admin.display(description="Batch")
    def batch_number(self, obj: Delivery):
        return obj.batch.number if obj.batch else "-"

    @admin.display(description="Provider events")
    def engagement(self, obj: Delivery) -> str:
        events = [
            label
            for label, at in (
                ("delivered", obj.delivered_at),
                ("opened", obj.opened_at),
                ("clicked", obj.clicked_at),
                ("bounced", obj.bounced_at),
                ("complained", obj.complained_at),
                ("unsubscribed", obj.unsubscribed_at),
            )
            if at
        ]
        return ", ".join(events) or "-"


@admin.register(Batch)
class BatchAdmin(ReadOnlyAdmin):
    list_display = [
        "number",
        "digest",
        "segment",
        "status",
        "recipient_count",
        "attempts",
        "submitted_at",
        "finished_at",
        "short_error",
    ]
    list_filter = [("digest", admin.RelatedOnlyFieldListFilter), "status"]
    list_select_related = ["digest"]
    ordering = ["-id"]
    show_full_result_count = False
    readonly_fields = ["idempotency_key"]

    @admin.display(description="Topics")
    def segment(self, obj: Batch) -> str:
        return obj.segment_key or "all topics"

    @admin.display(description="Last error")
    def short_error(self, obj: Batch):
        if not obj.last_error:
            return "-"
        return format_html('<span title="{}">{}</span>', obj.last_error, obj.last_error[:80])
