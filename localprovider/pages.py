"""The inbox pages. Everything that came in a call is escaped; an HTML part is shown only in a
sandboxed iframe (no scripts, no same-origin access) and the page forbids scripts outright."""

from html import escape
from urllib.parse import urlencode

# No script anywhere; the email's own styles, images and web fonts may load. The HTML part's
# srcdoc frame inherits this policy.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline' https:; img-src https: http: data:; font-src https: data:; "
    "frame-src 'self' about:; form-action 'self'"
)
# Links in the email open in a new, normal tab (so an unsubscribe link works as in a mail
# client) while the email itself stays sandboxed: no scripts, no forms, no same-origin access.
FRAME_SANDBOX = "allow-popups allow-popups-to-escape-sandbox"
FRAME_BASE = '<base target="_blank">'


STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2433;background:#f5f6f8}
header{background:#1d2433;color:#fff;padding:.8rem 1.5rem;display:flex;gap:1.5rem;align-items:baseline}
header a{color:#fff;text-decoration:none;font-weight:600}
main{padding:1rem 1.5rem;max-width:1200px}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #e3e6eb;vertical-align:top}
th{font-size:.8rem;text-transform:uppercase;color:#5b6475}
.figures{display:flex;flex-wrap:wrap;gap:1rem;margin:.5rem 0 1rem}
.figures div{background:#fff;padding:.5rem .8rem;border-radius:6px}
.figures b{display:block;font-size:1.2rem}
form{margin:0 0 1rem;display:flex;gap:.5rem}
input{padding:.3rem .5rem}
pre{white-space:pre-wrap;background:#fff;padding:1rem;border:1px solid #e3e6eb}
iframe{width:100%;height:70vh;border:1px solid #e3e6eb;background:#fff}
.muted{color:#5b6475}
"""


def _layout(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        "<header><a href='/'>Local provider inbox</a><span class='muted'>every email the service sent"
        "</span></header>"
        f"<main>{body}</main></body></html>"
    )


FIGURES = ("calls", "accepted_calls", "rejected_calls", "messages", "unique_recipients", "duplicates")


def inbox(messages: list[dict], stats: dict, to: str, subject: str) -> str:
    figures = "".join(
        f"<div><b>{stats.get(name, 0):,}</b>{escape(name.replace('_', ' '))}</div>" for name in FIGURES
    )
    rows = "".join(
        "<tr>"
        f"<td class='muted'>{escape(m['created_at'][:19].replace('T', ' '))}</td>"
        f"<td>{escape(m['to'])}</td>"
        f"<td><a href='/messages/{m['id']}'>{escape(m['subject']) or '(no subject)'}</a></td>"
        f"<td>{escape(m['from'])}</td>"
        f"<td class='muted'>{escape(', '.join(m['tags']))}</td>"
        "</tr>"
        for m in messages
    )
    if not rows:
        rows = "<tr><td colspan='5' class='muted'>No messages.</td></tr>"
    search = (
        "<form method='get' action='/'>"
        f"<input name='to' placeholder='recipient' value='{escape(to)}'>"
        f"<input name='subject' placeholder='subject contains' value='{escape(subject)}'>"
        "<button>Filter</button></form>"
    )
    body = (
        f"<div class='figures'>{figures}</div>{search}"
        "<table><thead><tr><th>time (UTC)</th><th>to</th><th>subject</th><th>from</th><th>tags</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )
    return _layout("Local provider inbox", body)


def message(m: dict) -> str:
    headers = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in m["headers"].items())
    meta = "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in m["metadata"].items()
    )
    frame = (
        f"<iframe sandbox='{FRAME_SANDBOX}' title='HTML part' referrerpolicy='no-referrer' "
        f'srcdoc="{escape(FRAME_BASE + m["html"], quote=True)}">'
        "</iframe>"
        if m["html"]
        else "<p class='muted'>No HTML part.</p>"
    )
    back = "/?" + urlencode({"to": m["recipient"]})
    body = (
        f"<h1>{escape(m['subject']) or '(no subject)'}</h1>"
        f"<p class='muted'>to {escape(m['to'])} · {escape(m['created_at'])} · "
        f"<a href='{escape(back)}'>all messages to this recipient</a></p>"
        f"<h2>HTML part</h2>{frame}"
        f"<h2>Text part</h2><pre>{escape(m['text']) or '(none)'}</pre>"
        f"<h2>Headers</h2><table>{headers}</table>"
        + (f"<h2>Metadata</h2><table>{meta}</table>" if meta else "")
    )
    return _layout(m["subject"] or "message", body)
