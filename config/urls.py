from django.contrib import admin
from django.urls import include, path

from config.health import healthz

admin.site.site_header = "Newsletter"
admin.site.site_title = "Newsletter"
admin.site.index_title = "Editors' desk"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("anymail/", include("anymail.urls")),
    path("", include("subscribers.urls")),
    path("", include("mailer.urls")),
]
