from django.contrib import admin
from django.urls import include, path

from config.health import healthz
from mailer.webhooks import TrackingWebhookView

admin.site.site_header = "Newsletter"
admin.site.site_title = "Newsletter"
admin.site.index_title = "Editors' desk"

urlpatterns = [
    # Subscriber CSV import and export, beside the admin's subscriber list (ahead of admin/).
    path("admin/subscribers/subscriber/", include("subscribers.admin_import")),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    # Anymail's Mailgun tracking view, answering 400 to signed event data it cannot read.
    path("anymail/mailgun/tracking/", TrackingWebhookView.as_view(), name="mailgun_tracking_webhook"),
    path("anymail/", include("anymail.urls")),
    path("", include("subscribers.urls")),
    path("", include("mailer.urls")),
]
