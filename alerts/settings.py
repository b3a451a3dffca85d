"""Service configuration, read from the environment and `.env`."""

from __future__ import annotations

from typing import Literal

from pydantic import AnyUrl, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from alerts.security import SecretKeyError, parse_secret_keys

MAINNET_WS_URL = "wss://exchange.app-api.xrocket.exchange/"
MAINNET_API_URL = "https://exchange.api.xrocket.tg"
_EXCHANGE_URLS = {
    "xrocket_ws_url": ("XROCKET_WS_URL", ("ws", "wss")),
    "xrocket_api_url": ("XROCKET_API_URL", ("https", "http")),
}


# Settings that are a host:port to listen on: their variable, and an example.
_HOST_PORTS = {
    "bot_listen": ("ALERTS_BOT_LISTEN", "0.0.0.0:8081"),
    "metrics_address": ("ALERTS_METRICS_ADDRESS", "0.0.0.0:9100"),
}


class Settings(BaseSettings):
    """Every configuration name of the service; see `.env.example` for each one's meaning."""

    # hide_input_in_errors: a rejected value may be a secret, and errors get printed.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", hide_input_in_errors=True
    )

    database_url: str = Field(default="sqlite:///./alerts.db", validation_alias="DATABASE_URL")
    xrocket_ws_url: str = Field(default=MAINNET_WS_URL, validation_alias="XROCKET_WS_URL")
    xrocket_api_url: str = Field(default=MAINNET_API_URL, validation_alias="XROCKET_API_URL")
    telegram_bot_token: SecretStr | None = Field(
        default=None, validation_alias="TELEGRAM_BOT_TOKEN"
    )
    telegram_api_url: str | None = Field(default=None, validation_alias="TELEGRAM_API_URL")
    telegram_proxy: SecretStr | None = Field(default=None, validation_alias="TELEGRAM_PROXY")
    telegram_paid_broadcast: bool = Field(default=False, validation_alias="TELEGRAM_PAID_BROADCAST")
    telegram_webhook_url: str | None = Field(default=None, validation_alias="TELEGRAM_WEBHOOK_URL")
    telegram_webhook_secret: SecretStr | None = Field(
        default=None, validation_alias="TELEGRAM_WEBHOOK_SECRET"
    )
    bot_listen: str = Field(default="127.0.0.1:8081", validation_alias="ALERTS_BOT_LISTEN")
    bot_commands_per_minute: int = Field(
        default=20, ge=1, validation_alias="ALERTS_BOT_COMMANDS_PER_MINUTE"
    )
    alerts_admin_token: SecretStr | None = Field(
        default=None, validation_alias="ALERTS_ADMIN_TOKEN"
    )
    alerts_secret_key: SecretStr | None = Field(default=None, validation_alias="ALERTS_SECRET_KEY")
    apprise_schemes: str | None = Field(default=None, validation_alias="ALERTS_APPRISE_SCHEMES")
    allow_private_targets: bool = Field(
        default=False, validation_alias="ALERTS_ALLOW_PRIVATE_TARGETS"
    )
    max_rules_per_user: int = Field(
        default=1000, ge=1, le=10_000_000, validation_alias="ALERTS_MAX_RULES_PER_USER"
    )
    api_requests_per_minute: int = Field(
        default=600, ge=1, le=1_000_000, validation_alias="ALERTS_API_REQUESTS_PER_MINUTE"
    )
    log_level: str = Field(default="INFO", validation_alias="ALERTS_LOG_LEVEL")
    log_format: Literal["text", "json"] = Field(
        default="text", validation_alias="ALERTS_LOG_FORMAT"
    )
    feed_ping_interval: float = Field(default=30.0, gt=0, validation_alias="ALERTS_PING_INTERVAL")
    feed_stale_timeout: float = Field(default=75.0, gt=0, validation_alias="ALERTS_STALE_TIMEOUT")
    symbol_stale_after: float = Field(
        default=300.0, ge=10, validation_alias="ALERTS_SYMBOL_STALE_AFTER"
    )
    recording_unhealthy_after: float = Field(
        default=30.0, ge=1, le=86400, validation_alias="ALERTS_RECORDING_UNHEALTHY_AFTER"
    )
    delivery_lease: float = Field(
        default=60.0, ge=1, le=3600, validation_alias="ALERTS_DELIVERY_LEASE"
    )
    apprise_processes: int = Field(
        default=2, ge=0, le=64, validation_alias="ALERTS_APPRISE_PROCESSES"
    )
    events_retention_days: int = Field(
        default=90, ge=1, le=36500, validation_alias="ALERTS_EVENTS_RETENTION_DAYS"
    )
    metrics_address: str | None = Field(default=None, validation_alias="ALERTS_METRICS_ADDRESS")

    @field_validator(
        "telegram_bot_token",
        "telegram_api_url",
        "telegram_proxy",
        "telegram_webhook_url",
        "telegram_webhook_secret",
        "alerts_admin_token",
        "alerts_secret_key",
        "apprise_schemes",
        "metrics_address",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `.env.example` copied as is leaves these blank: blank means "not set".
        return None if value == "" else value

    @field_validator("xrocket_ws_url", "xrocket_api_url")
    @classmethod
    def _exchange_url(cls, value: str, info: ValidationInfo) -> str:
        name, schemes = _EXCHANGE_URLS[info.field_name or ""]
        if AnyUrl(value).scheme not in schemes:
            raise ValueError(f"{name} must start with {' or '.join(f'{s}://' for s in schemes)}")
        return value

    @field_validator("alerts_secret_key")
    @classmethod
    def _usable_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                parse_secret_keys(value.get_secret_value())
            except SecretKeyError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("apprise_schemes")
    @classmethod
    def _scheme_list(cls, value: str | None) -> str | None:
        if value is not None:
            for part in value.split(","):
                word = part.strip()
                if word and word != "*" and not (word.isascii() and word.isalnum()):
                    raise ValueError(
                        "ALERTS_APPRISE_SCHEMES is a comma-separated list of schemes, "
                        "`default` (the built-in list) or `*` (every scheme)"
                    )
        return value

    @property
    def metrics_listen(self) -> tuple[str, int] | None:
        """Where `alerts engine` and `alerts worker` serve /metrics (None: they do not)."""
        if self.metrics_address is None:
            return None
        host, _, port = self.metrics_address.rpartition(":")
        return host.strip("[]"), int(port)

    @field_validator("telegram_proxy")
    @classmethod
    def _proxy_url(cls, value: SecretStr | None) -> SecretStr | None:
        # A secret: a proxy URL may carry a password.
        if value is not None:
            scheme = value.get_secret_value().partition("://")[0].lower()
            if scheme not in ("http", "https", "socks5", "socks4"):
                raise ValueError(
                    "TELEGRAM_PROXY is http://, https:// or socks5:// (host:port, maybe user:pass@)"
                )
        return value

    @field_validator("telegram_webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is not None and AnyUrl(value).scheme not in ("http", "https"):
            raise ValueError("TELEGRAM_WEBHOOK_URL must be an https:// URL")
        return value

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # Telegram's own rule for secret_token: 1-256 of A-Z, a-z, 0-9, _ and -.
        secret = value.get_secret_value() if value is not None else None
        if secret is not None and not (
            0 < len(secret) <= 256 and secret.replace("_", "").replace("-", "").isalnum()
        ):
            raise ValueError("TELEGRAM_WEBHOOK_SECRET is 1-256 letters, digits, _ or -")
        return value

    @field_validator("bot_listen", "metrics_address")
    @classmethod
    def _host_port(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            host, _, port = value.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                name, example = _HOST_PORTS[info.field_name or ""]
                raise ValueError(f"{name} is host:port, e.g. {example}")
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.telegram_webhook_url and not self.telegram_webhook_secret:
            raise ValueError("TELEGRAM_WEBHOOK_URL needs TELEGRAM_WEBHOOK_SECRET as well")
        return self

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("ALERTS_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level
