"""Configuration: every contract name, `.env.example` in step, secrets hidden."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from alerts.settings import MAINNET_WS_URL, Settings

ROOT = Path(__file__).resolve().parents[1]
CONTRACT_NAMES = {
    "DATABASE_URL",
    "XROCKET_WS_URL",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_API_URL",
    "ALERTS_ADMIN_TOKEN",
    "ALERTS_SECRET_KEY",
}


def setting_names() -> set[str]:
    return {str(field.validation_alias) for field in Settings.model_fields.values()}


def test_defaults_are_a_local_sqlite_file_and_mainnet() -> None:
    settings = Settings(_env_file=None)
    assert settings.database_url.startswith("sqlite:///")
    assert settings.xrocket_ws_url == MAINNET_WS_URL
    assert settings.telegram_bot_token is None


def test_every_contract_name_is_a_setting() -> None:
    assert setting_names() >= CONTRACT_NAMES


def test_env_example_lists_exactly_the_settings() -> None:
    text = (ROOT / ".env.example").read_text()
    names = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    assert names == setting_names()


def test_env_example_loads_as_is(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    settings = Settings()
    assert settings.alerts_admin_token is None  # blank means unset


def test_secrets_never_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:SECRET-bot-token")
    monkeypatch.setenv("ALERTS_ADMIN_TOKEN", "SECRET-admin")
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("ALERTS_SECRET_KEY", key)
    settings = Settings(_env_file=None)
    assert "SECRET" not in repr(settings) and key not in repr(settings)
    assert "SECRET" not in str(settings.model_dump()) and key not in str(settings.model_dump())
    assert settings.telegram_bot_token is not None
    assert settings.telegram_bot_token.get_secret_value() == "123456:SECRET-bot-token"


def test_secret_key_must_be_fernet_keys_and_is_never_echoed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALERTS_SECRET_KEY", "not-a-fernet-hunter2-key")
    with pytest.raises(ValidationError, match="Fernet") as caught:
        Settings(_env_file=None)
    assert "hunter2" not in str(caught.value)
    rotation = f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}"
    monkeypatch.setenv("ALERTS_SECRET_KEY", rotation)
    assert Settings(_env_file=None).alerts_secret_key is not None


def test_feed_url_must_be_a_websocket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XROCKET_WS_URL", "https://example.invalid/")
    with pytest.raises(ValidationError, match="ws:// or wss://"):
        Settings(_env_file=None)


@pytest.mark.parametrize("name", ["ALERTS_METRICS_ADDRESS", "ALERTS_BOT_LISTEN"])
@pytest.mark.parametrize("value", ["9100", "host:", ":9100", "host:99999", "host:port"])
def test_a_listening_address_is_host_and_port(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=f"{name} is host:port"):
        Settings()


def test_the_metrics_address_is_where_engines_and_workers_listen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().metrics_listen is None
    monkeypatch.setenv("ALERTS_METRICS_ADDRESS", "[::1]:9100")
    assert Settings().metrics_listen == ("::1", 9100)
