"""python-telegram-bot's HTTP layer over aiohttp (``telegram.request.BaseRequest``).

PTB's default, ``HTTPXRequest``, spends about 1.5 ms of CPU per call in httpx, httpcore and
anyio: a single process then tops out near 650 sendMessage calls a second, short of the
1,000/s Telegram allows a bot with paid broadcasts. aiohttp, which the service already uses
for everything else on HTTP, does the same call in a fraction of that. PTB keeps everything
above the transport: it builds the request and turns status codes and Telegram's error
payloads into its exceptions (``BaseRequest._request_wrapper``).

The contract of ``do_request``: return ``(status, body)`` for any HTTP answer, raise
``TimedOut`` when no answer came in time and ``NetworkError`` when the connection failed.
``ConnectTimedOut`` (a ``TimedOut``) says the request never left, so a retry cannot repeat it.
Requests are form-encoded, as PTB's own; file uploads are not implemented (nothing sends files).
"""

from __future__ import annotations

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

__all__ = ["AiohttpRequest", "ConnectTimedOut"]


class ConnectTimedOut(TimedOut):
    """No connection was made (or none was free) in time: the request was never sent."""


class AiohttpRequest(BaseRequest):
    """``BaseRequest`` over one ``aiohttp.ClientSession`` with a bounded connection pool."""

    def __init__(self, *, connection_pool_size: int = 1, timeout: float = 10.0) -> None:
        self._pool_size = max(1, connection_pool_size)
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        """The read timeout PTB adds to long polling's own timeout."""
        return self._timeout

    async def initialize(self) -> None:
        """Create the session; idempotent."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                headers={"User-Agent": self.USER_AGENT},
            )

    async def shutdown(self) -> None:
        """Close the session and its connections; idempotent."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: object = BaseRequest.DEFAULT_NONE,
        write_timeout: object = BaseRequest.DEFAULT_NONE,
        connect_timeout: object = BaseRequest.DEFAULT_NONE,
        pool_timeout: object = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Send one Bot API call; see the module docstring for the contract."""
        if self._session is None:
            raise RuntimeError("AiohttpRequest used before initialize()")

        def given(value: object) -> float | None:
            # a number or None as given by the caller; anything else is PTB's "not given" marker
            return value if value is None or isinstance(value, int | float) else self._timeout

        read, write, connect, pool = map(given, (read_timeout, write_timeout, connect_timeout, pool_timeout))
        timeout = aiohttp.ClientTimeout(
            connect=None if connect is None or pool is None else connect + pool,  # waiting for a slot too
            sock_connect=connect,
            sock_read=None if read is None or write is None else max(read, write),
        )
        if request_data is not None and request_data.contains_files:
            # the Telegram channel and the subscribers' bot send text; uploads were never needed
            raise NotImplementedError("AiohttpRequest does not upload files")
        data = request_data.json_parameters if request_data is not None else None
        try:
            async with self._session.request(method, url, data=data, timeout=timeout) as response:
                return response.status, await response.read()
        except aiohttp.ConnectionTimeoutError as exc:
            raise ConnectTimedOut(f"no connection to the Bot API in time: {exc}") from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise TimedOut(f"no answer from the Bot API in time: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc
