app_name = "mailer"
urlpatterns: list = []
