from django.urls import path

from mailer import api

app_name = "mailer"
urlpatterns: list = [
    path("api/articles", api.articles_endpoint, name="api-articles"),
]
