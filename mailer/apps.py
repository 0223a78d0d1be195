from django.apps import AppConfig


class MailerConfig(AppConfig):
    name = "mailer"
    verbose_name = "Newsletter"

    def ready(self) -> None:
        from anymail.signals import tracking

        import mailer.digests  # noqa: F401  (connects the instant-alert receiver)
        from mailer import feedback

        # The provider's tracking webhooks (authenticated by Anymail's view) update the ledger.
        tracking.connect(feedback.on_tracking, dispatch_uid="mailer.feedback.tracking")
        try:
            from subscribers import signals as subscriber_signals
        except ImportError:  # the subscribers app without its signals module
            return
        subscriber_signals.unsubscribed.connect(
            feedback.on_unsubscribed, dispatch_uid="mailer.feedback.unsubscribed"
        )
