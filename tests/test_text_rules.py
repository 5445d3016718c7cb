"""The rules on text and names, and the login failure windows, as plain
functions (the REST tests drive the same code through a server)."""
import sys
import unicodedata

import pytest

from qc_live import limits
from qc_live.errors import Invalid
from qc_live.models import username_key
from qc_live.text import LINES, ONE_LINE, _FORBIDDEN, check_text, check_username

BIDI_CONTROLS = {"LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"}


def test_the_refused_characters_are_exactly_the_unicode_classes_named():
    """The patterns are literal ranges (fast); they must say what the
    comment says: Cc and the bidirectional controls, plus line and paragraph
    separators for one line, minus tab, LF and CR for several."""
    refused = {ONE_LINE: set(), LINES: set()}
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        for text, pattern in _FORBIDDEN.items():
            if pattern.match(char):
                refused[text].add(char)
    control = {chr(c) for c in range(sys.maxunicode + 1)
               if unicodedata.category(chr(c)) == "Cc"
               or unicodedata.bidirectional(chr(c)) in BIDI_CONTROLS}
    separators = {chr(c) for c in range(sys.maxunicode + 1)
                  if unicodedata.category(chr(c)) in ("Zl", "Zp")}
    assert refused[ONE_LINE] == control | separators
    assert refused[LINES] == control - {"\t", "\n", "\r"}


@pytest.mark.parametrize("value, text, ok", [
    ("plain", ONE_LINE, True), ("\U0001f469\u200d\U0001f4bb", ONE_LINE, True),
    ("a\u00adb", ONE_LINE, True), ("a\nb", ONE_LINE, False), ("a\nb\tc\r\n", LINES, True),
    ("a\x00b", LINES, False), ("a\u2028b", LINES, True), ("a\u202eb", LINES, False),
])
def test_string_refuses_control_characters_by_kind_of_text(value, text, ok):
    if ok:
        assert check_text(value, "f", text=text) == value
    else:
        with pytest.raises(Invalid) as refused:
            check_text(value, "f", text=text)
        assert refused.value.code == "control_character"


def test_username_keys_ignore_case_width_and_surrounding_blanks():
    same = [("alice", "ALICE"), ("alice", " Alice "), ("Straße", "STRASSE"),
            ("admin", "\uff41\uff44\uff4d\uff49\uff4e"), ("\u00e9lodie", "E\u0301LODIE")]
    for a, b in same:
        assert username_key(a) == username_key(b), (a, b)
    for a, b in (("alice", "alicia"), ("elodie", "\u00e9lodie"), ("a b", "ab")):
        assert username_key(a) != username_key(b), (a, b)


def test_check_username_trims_and_refuses_what_is_not_printable():
    assert check_username("  Ana María ") == "Ana María"
    for bad, code in (("", "empty"), ("  ", "empty"), ("u" * 81, "too_long"),
                      ("a\x00", "invalid_username"), ("a\u200bb", "invalid_username"),
                      ("a\u00a0b", "invalid_username"), ("\ue000", "invalid_username")):
        with pytest.raises(Invalid) as refused:
            check_username(bad)
        assert refused.value.code == code, bad


def test_failure_windows_block_forget_and_drop_stale_keys(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: now[0])
    window = limits.FailureWindow(limit=3, window=60)
    for _ in range(3):
        assert window.blocked_for("k") == 0
        window.fail("k")
    assert window.blocked_for("k") == 60
    now[0] += 45
    assert window.blocked_for("k") == 15
    now[0] += 16
    assert window.blocked_for("k") == 0
    # Keys whose failures all expired go: a flood of new keys is bounded.
    for n in range(1000):
        window.fail(("flood", n))
    now[0] += 61
    window.fail("fresh")
    assert set(window._failures) == {"fresh"}
    # clear_where forgets one name's keys across addresses, and only those.
    for address in ("10.0.0.1", "10.0.0.2"):
        for _ in range(3):
            window.fail(("alice", address))
            window.fail(("bob", address))
    window.clear_where(lambda key: key[0] == "alice")
    assert window.blocked_for(("alice", "10.0.0.1")) == 0
    assert window.blocked_for(("bob", "10.0.0.1")) > 0
