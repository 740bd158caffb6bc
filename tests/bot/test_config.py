from __future__ import annotations

import pytest

from bot.config import ConfigError, Settings, load_settings
from tests.conftest import make_settings


def test_defaults_match_the_service_contract() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.port == 3000
    assert s.docket_smtp_port == 2525
    assert s.database_url == "sqlite+aiosqlite:///docket.db"
    assert s.slack_api_url == "https://slack.com/api/"


def test_admins_are_split_from_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKET_ADMINS", "U1, U2,,U3")
    assert load_settings(_env_file=None).docket_admins == ["U1", "U2", "U3"]


def test_invalid_values_give_one_readable_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKET_TIMEZONE", "Mars/Olympus")
    monkeypatch.setenv("PORT", "notaport")
    with pytest.raises(ConfigError) as info:
        load_settings(_env_file=None)
    text = str(info.value)
    assert "DOCKET_TIMEZONE" in text and "PORT" in text and "README" in text


def test_serving_without_slack_credentials_explains_the_manifest() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ConfigError) as info:
        s.require_slack()
    assert "manifest.yml" in str(info.value)
    assert "SLACK_BOT_TOKEN" in str(info.value)


def test_api_url_gets_a_trailing_slash() -> None:
    assert make_settings(slack_api_url="http://127.0.0.1:1/api").slack_api_url.endswith("/api/")


def test_mail_secret_is_stable_and_secret_dependent() -> None:
    a = make_settings(slack_signing_secret="one").mail_secret()
    assert a == make_settings(slack_signing_secret="one").mail_secret()
    assert a != make_settings(slack_signing_secret="two").mail_secret()
