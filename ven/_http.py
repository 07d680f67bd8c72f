"""The VEN's side of OpenADR 2.0b Simple HTTP (profile section 9.1): one keep-alive mTLS session.

Owns the one ``aiohttp.ClientSession`` a :class:`VtnLink` talks through, every request's timeout,
and the translation of foreign failures: aiohttp, ssl and timeout errors, HTTP 5xx and HTTP 429
(too many requests: nothing happened, come back later) become :class:`VtnUnavailable`, carrying the
Retry-After the VTN sent; other HTTP 4xx become :class:`VtnRefused`; a reply body is decoded by the
codec (hardened, XSD-validated), whose ``RemoteProtocolError`` passes unchanged. An empty 200
body is a valid answer (openleadr's VTN answers an oadrResponse that way) and reads as ``None``.

Connections are kept alive: a new mutual-TLS handshake costs far more than a request
(docs/architecture.md#where-the-time-goes).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final, TypeVar

import aiohttp

from schemas import SERVICE_PREFIX, Codec, EiResponse, Message, Service, TransportName

from .errors import VtnRefused, VtnUnavailable

__all__ = ["Link", "VtnLink", "check_reply", "read_capped", "reply_status", "retry_after_seconds"]

log = logging.getLogger(__name__)

_M = TypeVar("_M", bound=Message)

_CONTENT_TYPE: Final = "application/xml"


def reply_status(message: Message | None) -> EiResponse | None:
    """The eiResponse a reply carries, if any (most VTN answers have one)."""
    response = getattr(message, "response", None)
    return response if isinstance(response, EiResponse) else None


def check_reply(message: Message | None, what: str) -> None:
    """Raise :class:`VtnRefused` when the VTN's answer carries a non-2xx OpenADR code."""
    status = reply_status(message)
    if status is not None and not status.ok:
        raise VtnRefused(status.code, f"{what}: {status.description or 'refused'}")


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Seconds a Retry-After header asks for (RFC 9110 10.2.3: delay-seconds or an HTTP-date,
    relative to ``now``); None when absent or unreadable, 0 for a date in the past."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # an HTTP-date is GMT by definition
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class Link:
    """How a :class:`ven.VenClient` reaches its VTN: :meth:`post` one encoded payload to a service
    and read the answer. :class:`VtnLink` is Simple HTTP; ``ven.xmpp.XmppLink`` is XMPP."""

    codec: Codec
    transport_name: TransportName = TransportName.SIMPLE_HTTP
    # the VEN's own address on this transport, announced at registration (None: not needed)
    address: str | None = None
    # whether the VEN polls for what the VTN queued (on XMPP the VTN sends it)
    polls: bool = True

    async def post(self, service: Service, body: bytes) -> Message | None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def send(self, service: Service, message: Message) -> Message | None:
        return await self.post(service, self.codec.encode(message))

    async def exchange(self, service: Service, message: Message, expected: type[_M]) -> _M:
        """Send ``message``; its reply, which must be an ``expected`` carrying a 2xx code."""
        reply = await self.send(service, message)
        what = type(message).__name__
        check_reply(reply, what)
        if not isinstance(reply, expected):
            got = type(reply).__name__ if reply is not None else "an empty body"
            raise VtnRefused(None, f"{what}: expected {expected.__name__}, got {got}")
        return reply

    async def acknowledged(self, service: Service, message: Message) -> None:
        """Send a payload the VTN answers with oadrResponse (or, like openleadr, an empty body)."""
        check_reply(await self.send(service, message), type(message).__name__)


class VtnLink(Link):
    """POSTs payloads to one VTN; ``vtn_url`` is its root, e.g. ``https://vtn:8443``.

    The session is created lazily inside the running loop and closed by :meth:`close`.
    """

    def __init__(
        self,
        vtn_url: str,
        ssl_context: ssl.SSLContext | None,
        codec: Codec,
        *,
        request_timeout: float = 30.0,
        max_reply_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        root = vtn_url.rstrip("/")
        self.base_url = root if root.endswith(SERVICE_PREFIX) else root + SERVICE_PREFIX
        self.codec = codec
        self._ssl = ssl_context
        self._timeout = request_timeout
        self._max_reply = max_reply_bytes
        self._session: aiohttp.ClientSession | None = None

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                ssl=self._ssl if self._ssl is not None else False, keepalive_timeout=60.0
            )
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"Content-Type": _CONTENT_TYPE}
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, service: Service, body: bytes) -> Message | None:
        """Send encoded ``body`` to ``service``; the decoded reply, or None for an empty one."""
        url = f"{self.base_url}/{service}"
        session = self._ensure_session()
        try:
            async with asyncio.timeout(self._timeout):
                async with session.post(url, data=body) as reply:
                    content = await read_capped(reply.content, self._max_reply)
                    status = reply.status
                    retry_after = reply.headers.get("Retry-After")
        except TimeoutError:
            raise VtnUnavailable(f"{service}: no answer within {self._timeout} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise VtnUnavailable(f"{service}: {type(exc).__name__}: {exc}") from exc
        if status >= 500 or status == 429:
            wait = retry_after_seconds(retry_after, datetime.now(UTC))
            suffix = f" (Retry-After {wait:g} s)" if wait is not None else ""
            raise VtnUnavailable(f"{service}: HTTP {status}{suffix}", retry_after=wait)
        if status != 200:
            raise VtnRefused(status, f"{service}: HTTP {status} {content[:200]!r}")
        if len(content) > self._max_reply:
            raise VtnRefused(None, f"{service}: reply over {self._max_reply} bytes")
        if not content.strip():
            return None
        return self.codec.decode(content)


async def read_capped(stream: aiohttp.StreamReader, cap: int) -> bytes:
    """The whole body, or its first ``cap + 1`` bytes when it is longer (refused by the caller).

    ``StreamReader.read(n)`` returns what is buffered so far, not n bytes: a reply spanning several
    TLS records would arrive cut short, so read chunk by chunk until EOF or over the cap.
    """
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            break
    return b"".join(chunks)
