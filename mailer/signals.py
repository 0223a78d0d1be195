"""Signals the mailer sends, so later steps of the flow can react without this step importing
them.

``articles_published(sender=Article, article_ids=[...])``: sent once the transaction that
stored new articles has committed (feed, CMS API). ``article_ids`` lists only the articles that
were new; updates of known articles are not announced. Receivers (instant alerts) must be
idempotent per article: an article can be announced again only if two writers raced to store
it, which ``Article.alerted_at`` guards against.
"""

from django.dispatch import Signal

articles_published = Signal()
