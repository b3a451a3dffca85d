"""API keys (only their hash is stored) and the box that encrypts stored secrets."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

API_KEY_PREFIX = "xra_"


def new_api_key() -> str:
    """A fresh random API key; shown to its owner once, never stored."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """The stored form of a key; keys carry 256 random bits, so one SHA-256 is enough."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_hint(key: str) -> str:
    """The first characters of a key, enough for its owner to tell keys apart."""
    return key[: len(API_KEY_PREFIX) + 6]


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(given.encode(), expected.encode())


class SecretKeyError(ValueError):
    """ALERTS_SECRET_KEY is not a usable key (the message never contains it)."""


class SecretsUnavailable(RuntimeError):
    """No ALERTS_SECRET_KEY is configured, so secrets cannot be stored or read."""


class UndecryptableSecret(RuntimeError):
    """A stored secret was encrypted with a key that is no longer configured."""


def parse_secret_keys(value: str) -> MultiFernet:
    """Fernet keys from a comma-separated list: the first encrypts, all decrypt (rotation)."""
    keys = [part.strip() for part in value.split(",") if part.strip()]
    if not keys:
        raise SecretKeyError("ALERTS_SECRET_KEY is empty")
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError):
        raise SecretKeyError(
            "ALERTS_SECRET_KEY must be one or more Fernet keys separated by commas "
            '(generate one with: python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())")'
        ) from None


class SecretBox:
    """Encrypts secrets for storage; without a key it refuses, rather than storing them plain."""

    def __init__(self, keys: str | None) -> None:
        self._fernet = parse_secret_keys(keys) if keys else None

    @property
    def available(self) -> bool:
        """True when a key is configured."""
        return self._fernet is not None

    def seal(self, secret: str) -> str:
        """The encrypted, storable form of `secret`."""
        if self._fernet is None:
            raise SecretsUnavailable
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        """The secret inside `sealed`."""
        if self._fernet is None:
            raise SecretsUnavailable
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise UndecryptableSecret from None
