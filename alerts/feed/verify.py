"""Check an account token against the exchange: a short connection and one `auth` request."""

from __future__ import annotations

import asyncio
import logging

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidURI, WebSocketException

from alerts.feed import protocol
from alerts.feed.errors import AuthRejected, ExchangeError, RetryLater, error_from_wire

logger = logging.getLogger("alerts.feed")
_wire_logger = logging.getLogger("alerts.feed.wire")


class ExchangeUnreachable(Exception):
    """The exchange could not be asked: no connection, no answer in time, or it was busy."""


async def verify_token(url: str, token: str, *, timeout: float = 10.0) -> None:
    """Return when the exchange accepts `token`; raise `AuthRejected` (or another
    `ExchangeError`) when it refuses, `ExchangeUnreachable` when it cannot be asked."""
    try:
        async with asyncio.timeout(timeout):
            async with connect(
                url, open_timeout=None, ping_interval=None, close_timeout=1, logger=_wire_logger
            ) as ws:
                await ws.send(protocol.encode_request("verify", protocol.AUTH, {"token": token}))
                async for raw in ws:
                    reply = protocol.decode_frame(raw)
                    if not isinstance(reply, dict) or reply.get("id") != "verify":
                        continue
                    if "error" in reply:
                        raise error_from_wire(
                            reply["error"], redact=lambda s: s.replace(token, "***")
                        )
                    return
                raise ExchangeUnreachable("the exchange closed the connection without answering")
    except (AuthRejected, ExchangeUnreachable):
        raise
    except RetryLater as exc:
        raise ExchangeUnreachable(f"the exchange is busy ({exc.message})") from None
    except ExchangeError:
        raise
    except TimeoutError:
        raise ExchangeUnreachable(f"no answer from the exchange within {timeout:g} s") from None
    except (OSError, WebSocketException, InvalidURI, ValueError) as exc:
        logger.warning("token check: exchange unreachable: %s", type(exc).__name__)
        raise ExchangeUnreachable("the exchange could not be reached") from None
