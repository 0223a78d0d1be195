from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Newsletter"
admin.site.site_title = "Newsletter"
admin.site.index_title = "Editors' desk"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("subscribers.urls")),
    path("", include("mailer.urls")),
]
