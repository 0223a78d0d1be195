from django.urls import path

from subscribers import api, views

app_name = "subscribers"

# The token routes are the ones subscribers/tokens.py writes into emails; keep them in step.
urlpatterns = [
    path("", views.signup, name="signup"),
    path("subscribe/", views.subscribe, name="subscribe"),
    path("subscribe/embed/", views.subscribe_embed, name="subscribe_embed"),
    path("api/subscribe", api.subscribe, name="api_subscribe"),
    path("thanks/", views.thanks, name="thanks"),
    path("confirm/<str:token>/", views.confirm, name="confirm"),
    path("preferences/<str:token>/", views.preferences, name="preferences"),
    path("preferences/<str:token>/export/", views.export, name="export"),
    path("preferences/<str:token>/erase/", views.erase, name="erase"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("unsubscribe/<str:token>/one-click/", views.one_click, name="one_click"),
]
