"""The [api] keys: their defaults, their checks, and the token the API needs beyond loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchd.app import api_settings
from switchd.config import ConfigError, load, loads

REPO = Path(__file__).resolve().parents[2]


def test_the_api_defaults_to_loopback_without_a_token_chaos_off_and_a_trace_of_100_calls() -> None:
    api = loads("").api
    assert (str(api.listen), api.token, api.chaos, api.trace_calls, api.trace_messages) == (
        "127.0.0.1:8080", None, False, 100, 50)
    shipped = load(REPO / "config" / "switchd.toml").api
    assert shipped == api


def test_listening_beyond_loopback_without_a_token_is_one_error_naming_the_token(tmp_path: Path) -> None:
    path = tmp_path / "switchd.toml"
    path.write_text('node = "n"\n[api]\nlisten = "0.0.0.0:8080"\n')
    with pytest.raises(ConfigError) as refused:
        load(path)
    assert (refused.value.key, refused.value.line) == ("api.token", 3)
    assert str(refused.value).startswith(f"{path}:3: api.token: required: api.listen 0.0.0.0:8080 is not a loopback")


def test_with_a_token_any_address_is_allowed_and_the_settings_carry_it() -> None:
    config = loads('[api]\nlisten = "0.0.0.0:8081"\ntoken = "a-long-enough-token-1234"\nchaos = true\n'
                   "trace_calls = 0\n")
    settings = api_settings(config)
    assert (settings.host, settings.port, settings.token, settings.chaos, settings.trace_calls) == (
        "0.0.0.0", 8081, "a-long-enough-token-1234", True, 0)


@pytest.mark.parametrize(("text", "reason"), [
    ('token = "short"', "at least 16 characters"),
    ('token = "has spaces in it, sixteen+"', "at least 16 characters"),
    ("trace_calls = -1", "must be >= 0"),
    ("trace_messages = 0", "must be >= 1"),
    ('chaos = "yes"', "expected a boolean"),
])
def test_a_bad_api_value_is_refused_naming_the_key(text: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as refused:
        loads(f"[api]\n{text}\n")
    assert refused.value.key == f"api.{text.split(' ')[0]}"
