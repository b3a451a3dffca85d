"""Wire errors map to typed exceptions that say whether to retry."""

from __future__ import annotations

import pytest

from alerts.feed import errors

RETRY = {-32050, -32603}
STOP = {-32030, -32033, -32034}
REJECT = {-32700, -32600, -32601, -32602, -32000, -32001, -32002, -32003, -32005, -32006}
REJECT |= {-32007, -32008, -32009, -32010, -32011, -32032}


@pytest.mark.parametrize("code", sorted(RETRY | STOP | REJECT))
def test_every_published_code_has_its_own_type(code: int) -> None:
    exc = errors.error_from_wire({"code": code, "message": "m"})
    assert exc.code == code
    assert type(exc) not in (errors.ExchangeError, errors.RequestRejected)
    if code in RETRY:
        assert isinstance(exc, errors.RetryLater)
        assert exc.retryable
    elif code in STOP:
        assert isinstance(exc, errors.AuthRejected)
        assert not exc.retryable
    else:
        assert isinstance(exc, errors.RequestRejected)
        assert not exc.retryable


def test_named_examples() -> None:
    assert isinstance(errors.error_from_wire({"code": -32050}), errors.RateLimited)
    assert isinstance(errors.error_from_wire({"code": -32030}), errors.InvalidToken)
    assert isinstance(errors.error_from_wire({"code": "-32034"}), errors.UserBlocked)


@pytest.mark.parametrize("error", [None, "boom", [], {"code": 1.5}, {"code": 12345}, {}])
def test_odd_shapes_still_give_a_non_retryable_error(error: object) -> None:
    exc = errors.error_from_wire(error)
    assert isinstance(exc, errors.RequestRejected)


def test_redaction_and_bounded_message() -> None:
    exc = errors.error_from_wire(
        {"code": -32030, "message": "bad token abc.def " + "x" * 500},
        redact=lambda text: text.replace("abc.def", "***"),
    )
    assert "abc.def" not in str(exc)
    assert len(exc.message) <= 200


def test_a_secret_straddling_the_cut_is_redacted_whole_first() -> None:
    """Cut first, a token across position 200 would keep its head: no part may remain."""
    token = "eyJhbGciOiJIUzI1NiJ9.SECRETPAYLOAD.signature"
    message = "x" * 180 + f" token {token} was refused"
    exc = errors.error_from_wire(
        {"code": -32030, "message": message}, redact=lambda text: text.replace(token, "***")
    )
    assert len(exc.message) <= 200
    assert "eyJ" not in str(exc) and "SECRET" not in str(exc)


@pytest.mark.parametrize("code", ["²", "-١٢", "9" * 5000, 10**30, True])
def test_odd_codes_never_raise(code: object) -> None:
    exc = errors.error_from_wire({"code": code, "message": "m"})
    assert isinstance(exc, errors.RequestRejected)
