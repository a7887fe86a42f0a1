"""Flask-WTF forms: CSRF and field checks in one place."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from .references import trim


def _no_control_characters(form, field) -> None:
    """A NUL or other control character is no name or password; PostgreSQL would refuse it outright."""
    if field.data and any(ord(char) < 32 or ord(char) == 127 for char in field.data):
        raise ValidationError(_l("Control characters are not allowed here."))


class LoginForm(FlaskForm):
    username = StringField(_l("User name"), validators=[DataRequired(), Length(max=100), _no_control_characters])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200), _no_control_characters])


class ReferenceEditForm(FlaskForm):
    """One form for every reference edit; which fields matter depends on the route.

    The value is checked by references.clean_value in the view, the one rule for every path.
    """

    kind = SelectField(_l("Kind"), choices=[], validate_choice=False)
    value = StringField(_l("Value"))
    reason = TextAreaField(_l("Reason"), validators=[Optional(), Length(max=500)])
    version = HiddenField()

    def reason_text(self) -> str:
        """The reason as saved: trimmed like values, so a pasted zero-width space is not a reason."""
        return trim(self.reason.data or "")

    def version_number(self) -> int | None:
        """The version the page was loaded with; None when missing or not a plausible version."""
        try:
            number = int(self.version.data)
        except (TypeError, ValueError):
            return None
        return number if 0 < number < 2**31 else None
