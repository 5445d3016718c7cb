"""What text may hold: names, notes, usernames and passwords.

Plain functions raising the project's errors, so the request schemas
(schemas/), the CLI and the first start share them. A lone surrogate (JSON
"\\ud800") is a type error (400 invalid_text): no database stores it; the
rest are value errors (422).
"""
import re
import unicodedata

from .errors import BadRequest, Invalid
from .models import MAX_USERNAME_KEY, username_key

MAX_USERNAME = 80
MIN_PASSWORD = 8

# Control characters (Unicode category Cc: U+0000-U+001F, U+007F-U+009F) cut
# strings short in C code, forge lines in logs and CSV exports, and drive
# terminals; the bidirectional embedding, override and isolate controls
# (U+202A-U+202E, U+2066-U+2069) make text read differently from what it is.
# Both are refused. One line of text (names, ids) refuses line breaks too,
# U+2028/U+2029 included; several lines (notes) keep tab, line feed and
# carriage return. Other format characters (category Cf) stay: zero-width
# joiners build emoji and Persian words, marks like U+200E are needed in
# right-to-left text.
ONE_LINE, LINES, ANY_TEXT = "one line", "lines", "any text"
_BIDI_CONTROLS = r"\u202a-\u202e\u2066-\u2069"
_FORBIDDEN = {
    ONE_LINE: re.compile(rf"[\x00-\x1f\x7f-\x9f\u2028\u2029{_BIDI_CONTROLS}]"),
    LINES: re.compile(rf"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_BIDI_CONTROLS}]"),
}


def describe_character(char: str) -> str:
    """U+202E (RIGHT-TO-LEFT OVERRIDE); control characters have no name."""
    return f"U+{ord(char):04X} ({unicodedata.name(char, 'a control character')})"


def check_text(value: str, name: str, max_length: int = 255, allow_empty: bool = False,
               strip: bool = False, text: str = ONE_LINE) -> str:
    """A string field's value, checked in this order: valid Unicode, then
    (after removing surrounding blanks if `strip`) not blank unless
    `allow_empty`, at most `max_length` characters, and only the characters
    `text` allows: ONE_LINE, LINES, or ANY_TEXT (passwords, and names only
    looked up)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"'{name}' is not valid Unicode text", code="invalid_text") from None
    if strip:
        value = value.strip()
    if not allow_empty and not value.strip():
        raise Invalid(f"'{name}' must not be empty", code="empty")
    if len(value) > max_length:
        raise Invalid(f"'{name}' is longer than {max_length} characters", code="too_long")
    if text != ANY_TEXT:
        bad = _FORBIDDEN[text].search(value)
        if bad:
            allowed = ("control characters and line breaks are not allowed" if text == ONE_LINE
                       else "control characters other than tab and line breaks are not "
                       "allowed")
            raise Invalid(f"'{name}' contains {describe_character(bad[0])} at character "
                          f"{bad.start() + 1}: {allowed}", code="control_character")
    return value


def check_username(value: str) -> str:
    """A username as stored: without surrounding blanks, at most 80
    characters, printable only (str.isprintable: no control, format,
    separator other than the space, private-use or unassigned characters).
    Raises Invalid. Uniqueness ignoring case: models.username_key, a
    UNIQUE column."""
    value = value.strip()
    if not value:
        raise Invalid("'username' must not be empty", code="empty")
    if len(value) > MAX_USERNAME:
        raise Invalid(f"'username' is longer than {MAX_USERNAME} characters", code="too_long")
    for position, char in enumerate(value, 1):
        if not char.isprintable():
            raise Invalid(f"'username' contains {describe_character(char)} at character "
                          f"{position}: a username is printable characters only",
                          code="invalid_username")
    if len(username_key(value)) > MAX_USERNAME_KEY:  # NFKC can lengthen a name 18-fold
        raise Invalid("'username' is too long once normalised for comparison",
                      code="too_long")
    return value


def check_new_password(value: str, name: str) -> str:
    if len(value) < MIN_PASSWORD:
        raise Invalid(f"'{name}' needs at least {MIN_PASSWORD} characters",
                      code="weak_password")
    return value
