"""Input of the reader-facing pages and the JSON API, validated before any service runs.

Every message names its field, so a 400 says what to fix. Nothing here writes.
"""

import re
import unicodedata

from django import forms
from django.conf import settings
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from subscribers.addresses import InvalidAddress, normalise_email
from subscribers.models import Frequency, Topic


def consent_wording() -> str:
    """The words shown next to the sign-up button; stored with every sign-up as agreed to."""
    return gettext(
        "I want to receive the newsletter of %(name)s by email with the topics "
        "and frequency chosen above. I can change them or unsubscribe at any time from a link "
        "in every email. My address is only used for this newsletter."
    ) % {"name": settings.PUBLICATION_NAME}


def _no_control_characters():
    def validate(value: str) -> None:
        if any(unicodedata.category(ch) == "Cc" for ch in value):
            raise forms.ValidationError(gettext("cannot contain line breaks or control characters."))

    return validate


class TopicChoiceField(forms.ModelMultipleChoiceField):
    default_error_messages = {
        "invalid_choice": _("%(value)s is not one of the topics offered."),
        "invalid_pk_value": _("“%(pk)s” is not a topic."),
        "invalid_list": _("send a list of topic ids."),
    }

    def clean(self, value):
        if not self.required and value in self.empty_values:
            return []  # no topic chosen (every topic): nothing to look up
        # Refuse anything but plain ids before the database sees it (a 30-digit "id" would
        # overflow a bigint lookup).
        if isinstance(value, (list, tuple)):
            for item in value:
                if isinstance(item, bool) or not re.fullmatch(r"[0-9]{1,18}", str(item)):
                    raise forms.ValidationError(
                        self.error_messages["invalid_pk_value"],
                        code="invalid_pk_value",
                        params={"pk": str(item)[:40]},
                    )
        return super().clean(value)


class ChoicesForm(forms.Form):
    """Topics, frequency and name: what a reader picks on sign-up and on the preferences page."""

    topics = TopicChoiceField(
        queryset=Topic.objects.filter(is_public=True),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Choose none to receive every topic."),
    )
    frequency = forms.ChoiceField(
        choices=Frequency.choices,
        initial=Frequency.DAILY,
        widget=forms.RadioSelect,
        label=_("How often"),
        error_messages={"invalid_choice": _("%(value)s is not one of the choices.")},
    )
    name = forms.CharField(
        max_length=100,
        required=False,
        label=_("Name"),
        help_text=_("Optional: used to greet you."),
        validators=[_no_control_characters()],
        error_messages={"max_length": _("at most %(limit_value)d characters, please.")},
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["frequency"].required = True
        self.fields["frequency"].error_messages["required"] = gettext(
            "choose how often you want to hear from us."
        )


class SignupForm(ChoicesForm):
    field_order = ["email", "name", "topics", "frequency", "website"]

    email = forms.CharField(
        label=_("Email address"),
        strip=False,  # normalise_email strips, after refusing control characters
        widget=forms.EmailInput(attrs={"autocomplete": "email", "required": True}),
        error_messages={"required": _("enter your email address.")},
    )
    # Hidden from people by CSS and aria-hidden; bots that fill every field fill this one.
    website = forms.CharField(required=False, label="Leave this field empty", strip=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("frequency", Frequency.DAILY)

    def clean_email(self) -> str:
        try:
            return normalise_email(self.cleaned_data["email"])
        except InvalidAddress as exc:
            raise forms.ValidationError(str(exc)) from exc

    @property
    def is_bot(self) -> bool:
        return bool(self.data.get("website"))


class PreferencesForm(ChoicesForm):
    pass


class EraseForm(forms.Form):
    confirm = forms.BooleanField(
        label=_("Yes, delete my subscription and everything you store about me."),
        error_messages={"required": _("tick the box to confirm that you want your data erased.")},
    )


def error_summary(form: forms.Form) -> str:
    """One line naming each wrong field, for 400 answers."""
    return " ".join(f"{label}: {message}" for label, message in labelled_errors(form))


def labelled_errors(form: forms.Form) -> list[tuple[str, str]]:
    out = []
    for field, errors in form.errors.items():
        label = form.fields[field].label if field in form.fields else None
        label = str(label or field.replace("_", " ").capitalize())
        out.extend((label, str(message)) for message in errors)
    return out
