"""``{% newsletter_dashboard as dash %}``: the editors' dashboard figures for the admin index."""

from django import template

from mailer.dashboard import dashboard

register = template.Library()


@register.simple_tag
def newsletter_dashboard() -> dict:
    return dashboard()
