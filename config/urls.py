from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from config.health import healthz
from mailer.webhooks import tracking_urlpatterns

admin.site.site_header = "Newsletter"
admin.site.site_title = "Newsletter"
admin.site.index_title = "Editors' desk"

urlpatterns = [
    # Subscriber CSV import and export, beside the admin's subscriber list (ahead of admin/).
    path("admin/subscribers/subscriber/", include("subscribers.admin_import")),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    # The tracking webhook of the provider(s) in use only (mailer/webhooks.py says why).
    *tracking_urlpatterns(settings.ANYMAIL_TRACKING_PROVIDERS),
    path("", include("subscribers.urls")),
    path("", include("mailer.urls")),
]
