from django.apps import AppConfig


class MailerConfig(AppConfig):
    name = "mailer"
    verbose_name = "Newsletter"

    def ready(self) -> None:
        import mailer.digests  # noqa: F401  (connects the instant-alert receiver)
