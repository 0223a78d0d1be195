"""MJML templates -> email HTML (mjml-python, the Rust MRML binding) and the plain-text part.

Every email is a pair of Django templates: ``email/<name>.mjml`` (extending ``email/base.mjml``)
and ``email/<name>.txt``. Django autoescapes the MJML template, so any field from outside is
escaped before MJML sees it.
"""

from dataclasses import dataclass

from django.template.loader import render_to_string
from mjml import mjml2html


class TemplateCompileError(Exception):
    """The MJML source did not compile (a bug in a template, never a reader's input)."""


@dataclass(frozen=True)
class RenderedEmail:
    html: str
    text: str


def compile_mjml(source: str) -> str:
    try:
        return mjml2html(source)
    except ValueError as exc:
        raise TemplateCompileError(str(exc)) from exc


def render_email(name: str, context: dict, *, text_context: dict | None = None) -> RenderedEmail:
    """Render ``email/<name>.mjml`` to HTML and ``email/<name>.txt`` to text with one context
    (or the text with ``text_context``: merge placeholders differ between the parts)."""
    html = compile_mjml(render_to_string(f"email/{name}.mjml", context))
    text = (
        render_to_string(f"email/{name}.txt", context if text_context is None else text_context).strip()
        + "\n"
    )
    return RenderedEmail(html=html, text=text)
