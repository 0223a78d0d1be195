"""Admin: where articles come from (feed and API sources) and the articles themselves."""

import json

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Q
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from mailer.articles import (
    AUTHOR_MAX,
    TITLE_MAX,
    apply_topics_from_categories,
    article_key,
    issue_api_token,
)
from mailer.articles import remap_topics as remap_article_topics
from mailer.models import Article, Source
from mailer.polling import PollOutcome, poll_interval, poll_source
from mailer.sanitize import clean_html, plain_text, safe_url, trim_excerpt
from mailer.signals import articles_published
from mailer.tasks.feeds import ingest_source

# Sources polled during the request (with feedback at once); more are queued for the worker.
POLL_INLINE_LIMIT = 3


class SourceForm(forms.ModelForm):
    url = forms.URLField(
        max_length=1000, required=False, assume_scheme="https", help_text="Feed address (feeds only)."
    )

    class Meta:
        model = Source
        fields = ["name", "kind", "url", "is_active"]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("kind") == Source.Kind.FEED:
            url = cleaned.get("url", "")
            if not safe_url(url):
                self.add_error("url", "A feed needs its http or https address.")
        return cleaned


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    form = SourceForm
    list_display = ["name", "kind", "address", "status", "last_polled_at", "failure_count", "error"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "url"]
    readonly_fields = [
        "token_prefix",
        "last_polled_at",
        "last_success_at",
        "failure_count",
        "last_error",
        "etag",
        "last_modified",
        "created_at",
    ]
    fieldsets = [
        (None, {"fields": ["name", "kind", "url", "is_active"]}),
        ("API token", {"fields": ["token_prefix"], "description": "Use the “Create API token” action."}),
        (
            "Polling",
            {
                "fields": [
                    "last_polled_at",
                    "last_success_at",
                    "failure_count",
                    "last_error",
                    "etag",
                    "last_modified",
                ]
            },
        ),
        (None, {"fields": ["created_at"]}),
    ]
    actions = ["poll_now", "create_api_token"]

    @admin.display(description="address")
    def address(self, source: Source) -> str:
        if source.kind == Source.Kind.API:
            return f"API token {source.token_prefix}…" if source.token_prefix else "no token yet"
        return Truncator(source.url).chars(60)

    @admin.display(description="status")
    def status(self, source: Source) -> str:
        if not source.is_active:
            label, colour = "inactive", "#777"
        elif source.kind == Source.Kind.API:
            label, colour = ("ready", "#2a7a2a") if source.token_hash else ("needs a token", "#b36b00")
        elif source.failure_count:
            retry = (source.last_polled_at or timezone.now()) + poll_interval(source)
            label = f"failing ({source.failure_count} times), next try {timezone.localtime(retry):%H:%M}"
            colour = "#b00020"
        elif source.last_success_at:
            label, colour = "ok", "#2a7a2a"
        else:
            label, colour = "not polled yet", "#777"
        return format_html('<span style="color:{}">{}</span>', colour, label)

    @admin.display(description="last error")
    def error(self, source: Source) -> str:
        return Truncator(source.last_error).chars(80)

    @admin.action(description="Poll now")
    def poll_now(self, request, queryset):
        feeds = list(queryset.filter(kind=Source.Kind.FEED).order_by("id"))
        if not feeds:
            self.message_user(request, "Only feed sources can be polled.", messages.WARNING)
            return
        if len(feeds) > POLL_INLINE_LIMIT:
            # Fetching many feeds could outlast the request: the worker does it, the list shows it.
            for source in feeds:
                ingest_source.delay(source.id, force=True)
            self.message_user(
                request, f"{len(feeds)} sources queued for polling; their status updates here as they finish."
            )
            return
        for source in feeds:
            result = poll_source(source.id, force=True)
            level = {PollOutcome.FAILED: messages.ERROR, PollOutcome.BUSY: messages.WARNING}.get(
                result.outcome, messages.SUCCESS
            )
            if result.outcome == PollOutcome.BUSY:
                text = "is being polled right now; try again in a moment"
            else:
                text = result.describe()
            self.message_user(request, f"{source.name}: {text}.", level)

    @admin.action(description="Create API token (replaces the current one)")
    def create_api_token(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one source to give a token.", messages.WARNING)
            return None
        source = queryset.get()
        if source.kind == Source.Kind.FEED and source.url:
            self.message_user(
                request, "Feed sources are polled; tokens are for API sources.", messages.WARNING
            )
            return None
        token = issue_api_token(source)
        # Shown on this page only, never stored in a message or session: only its hash is kept.
        response = TemplateResponse(
            request,
            "admin/mailer/source/api_token.html",
            {
                **self.admin_site.each_context(request),
                "title": f"API token for {source.name}",
                "source": source,
                "token": token,
                "opts": self.model._meta,
                "endpoint": request.build_absolute_uri("/api/articles"),
            },
        )
        response["Cache-Control"] = "no-store"
        return response


class CategoriesField(forms.CharField):
    """Categories as editors write them: one per line. (The feed's list is stored as JSON; a
    JSON list typed here is still understood, so nothing written before is misread.)"""

    widget = forms.Textarea(attrs={"rows": 3, "cols": 40})

    def prepare_value(self, value):
        if isinstance(value, list):
            return "\n".join(str(item) for item in value)
        return value

    def to_python(self, value) -> list:
        text = (super().to_python(value) or "").strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError as exc:
                raise forms.ValidationError("Write one category per line.") from exc
            if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
                raise forms.ValidationError("Write one category per line.")
            return parsed
        return [line for line in text.splitlines() if line.strip()]


class ArticleForm(forms.ModelForm):
    categories = CategoriesField(
        required=False,
        help_text="One per line, as on the site (e.g. Local News). Empty topics below are set from them.",
    )
    guid = forms.CharField(
        max_length=500, required=False, help_text="The feed's id for the article; empty: its URL."
    )
    url = forms.URLField(max_length=1000, assume_scheme="https")
    image_url = forms.URLField(max_length=1000, required=False, assume_scheme="https")

    class Meta:
        model = Article
        fields = [
            "title",
            "url",
            "guid",
            "excerpt",
            "image_url",
            "author",
            "categories",
            "topics",
            "published_at",
            "source",
        ]

    def clean_title(self) -> str:
        title = plain_text(self.cleaned_data["title"], max_length=TITLE_MAX)
        if not title:
            raise forms.ValidationError("The title has no text.")
        return title

    def clean_url(self) -> str:
        url = safe_url(self.cleaned_data["url"])
        if not url:
            raise forms.ValidationError("An http or https address is needed.")
        return url

    def clean_image_url(self) -> str:
        value = self.cleaned_data.get("image_url", "")
        url = safe_url(value)
        if value and not url:
            raise forms.ValidationError("An http or https address is needed.")
        return url

    def clean_excerpt(self) -> str:
        return trim_excerpt(
            clean_html(self.cleaned_data.get("excerpt", ""), base_url=self.data.get("url") or None)
        )

    def clean_author(self) -> str:
        return plain_text(self.cleaned_data.get("author", ""), max_length=AUTHOR_MAX)

    def clean_categories(self) -> list:
        value = self.cleaned_data.get("categories") or []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise forms.ValidationError('A list of names, e.g. ["Politics", "Sport"].')
        return [name for name in (plain_text(item, max_length=100) for item in value) if name]

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is None and cleaned.get("url"):
            key = article_key(cleaned.get("guid", ""), cleaned["url"])
            if Article.objects.filter(Q(guid=key) | Q(url=cleaned["url"])).exists():
                self.add_error("guid" if cleaned.get("guid") else "url", "This article is already stored.")
            cleaned["guid"] = key
        return cleaned


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    form = ArticleForm
    list_display = ["title", "source", "published_at", "topic_names", "author"]
    list_filter = ["source", "topics", "published_at"]
    list_select_related = ["source"]
    search_fields = ["title", "url", "guid", "author"]
    date_hierarchy = "published_at"
    filter_horizontal = ["topics"]
    readonly_fields = ["created_at", "updated_at", "alerted_at", "excerpt_preview"]
    actions = ["remap_topics"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("topics")

    def get_readonly_fields(self, request, obj=None):
        # The guid is the dedup key: changing it would let the feed store the article again.
        return [*self.readonly_fields, "guid"] if obj else self.readonly_fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None:
            kwargs["fields"] = [f for f in ArticleForm.Meta.fields if f != "guid"]
        return super().get_form(request, obj, change=change, **kwargs)

    @admin.display(description="topics")
    def topic_names(self, article: Article) -> str:
        return ", ".join(topic.name for topic in article.topics.all())

    @admin.display(description="excerpt as readers see it")
    def excerpt_preview(self, article: Article) -> str:
        # Stored excerpts are sanitised on the way in (feed, API, this form).
        return mark_safe(f"<div>{clean_html(article.excerpt)}</div>") if article.excerpt else "—"

    @admin.action(description="Set topics from categories again")
    def remap_topics(self, request, queryset):
        count = remap_article_topics(queryset.values_list("id", flat=True))
        self.message_user(request, f"Topics set from categories for {count} articles.")

    def save_model(self, request, obj, form, change):
        if not change:
            obj.guid = form.cleaned_data["guid"]
        super().save_model(request, obj, form, change)
        if not change:
            article_id = obj.pk
            transaction.on_commit(lambda: articles_published.send(sender=Article, article_ids=[article_id]))

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # Topics left empty are filled from the categories, as for feed articles.
        if not form.cleaned_data.get("topics") and form.instance.categories:
            apply_topics_from_categories(form.instance)
