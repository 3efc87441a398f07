"""Redaction by value: a registered secret is scrubbed wherever it sits, under any key."""

from __future__ import annotations

from typing import Any

from podium._scrub import add_secret, scrub, scrub_text
from podium.observe import REDACTED, redact, set_redactor


def test_a_registered_value_is_scrubbed_under_any_key_and_inside_text() -> None:
    value = "pw-1c9e2f7a55b3"
    before = {"note": f"the password is {value}", "items": [value, 3]}
    add_secret(value)
    assert redact(before) == {"note": f"the password is {REDACTED}", "items": [REDACTED, 3]}
    assert scrub_text(f"{value}{value}") == REDACTED * 2
    assert scrub({value: 1}) == {REDACTED: 1}


def test_value_redaction_applies_whatever_hook_is_installed() -> None:
    value = "tok-88d0a1b2c3e4"
    add_secret(value)
    seen: list[Any] = []

    def keep_everything(data: Any) -> Any:
        seen.append(data)
        return data

    set_redactor(keep_everything)
    try:
        assert redact({"password": value}) == {"password": REDACTED}
        assert seen == [{"password": value}]
    finally:
        set_redactor(None)


def test_short_values_are_not_registered() -> None:
    add_secret("ab")
    assert scrub_text("abc cab") == "abc cab"
