"""A local, Mailgun-compatible email provider: Anymail's Mailgun backend sends to it unchanged.

It records every message it accepts (SQLite), shows them in an inbox, injects faults and posts
Mailgun tracking webhooks. See README.md in this directory.
"""
