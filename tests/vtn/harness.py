"""A minimal raw VEN client built from aiohttp and :mod:`schemas` only, sample events, a push
receiver and log watching, for the VTN's integration tests (the VTN itself: tests.kit.vtn)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from devpki import Role
from schemas import (
    Codec,
    CreatePartyRegistration,
    DistributeEvent,
    EiResponse,
    Event,
    EventDescriptor,
    EventInterval,
    EventSignal,
    EventStatus,
    Message,
    Poll,
    Response,
    SignalType,
    Target,
)
from schemas.events import ActivePeriod
from schemas.tls import client_context, server_context
from tests.kit.polling import drain_polls
from tests.kit.vtn import RunningVtn, running_vtn

# The VTN pushes only to public addresses unless allowed; the tests' push VENs are on loopback.
LOOPBACK_PUSH = ("127.0.0.0/8",)

CODEC = Codec()


class RawVen:
    """Posts typed messages with one client certificate; returns the typed reply."""

    def __init__(self, url: str, context: ssl.SSLContext) -> None:
        self.url = url
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))
        self.ven_id = ""
        self.registration_id = ""

    async def post(self, service: str, message: Message) -> Message:
        async with self.session.post(f"{self.url}/{service}", data=CODEC.encode(message),
                                     headers={"Content-Type": "application/xml"}) as reply:
            assert reply.status == 200, await reply.text()
            return CODEC.decode(await reply.read())

    async def register(self, name: str = "raw-ven", **fields: Any) -> Message:
        fields.setdefault("http_pull_model", True)
        reply = await self.post("EiRegisterParty", CreatePartyRegistration(
            request_id="r1", ven_name=name, **fields))
        self.ven_id = getattr(reply, "ven_id", None) or ""
        self.registration_id = getattr(reply, "registration_id", None) or ""
        return reply

    async def poll(self) -> Message:
        return await self.post("OadrPoll", Poll(ven_id=self.ven_id))

    async def drain(self) -> list[Message]:
        """Poll until the VTN has nothing more (the VEN polls again at once): what came before
        its oadrResponse (:func:`tests.kit.polling.drain_polls`: bounded)."""
        got = await drain_polls(self.poll, self.ven_id or "unregistered VEN")
        return [m for m in got[:-1] if m is not None]

    async def close(self) -> None:
        await self.session.close()


@asynccontextmanager
async def raw_ven(url: str, context: ssl.SSLContext) -> AsyncIterator[RawVen]:
    ven = RawVen(url, context)
    try:
        yield ven
    finally:
        await ven.close()


@asynccontextmanager
async def two_registered_vens(pki: Any, storage_url: str
                              ) -> AsyncIterator[tuple[RunningVtn, RawVen, RawVen]]:
    """A running VTN and the first two trusted VENs, each registered and drained."""
    async with running_vtn(pki, storage_url) as vtn, \
            raw_ven(vtn.url, pki.client_context()) as a, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[1])) as b:
        for ven in (a, b):
            await ven.register()
            await ven.drain()
        yield vtn, a, b


def code_of(reply: Message) -> int:
    assert isinstance(reply, Response), reply
    return reply.response.code


def sample_event(event_id: str, target: Target, *, start: datetime | None = None,
                 minutes: int = 30, value: float = 5.0) -> Event:
    now = datetime.now(UTC).replace(microsecond=0)
    return Event(
        descriptor=EventDescriptor(event_id=event_id, modification_number=0,
                                   market_context="http://cbp.example/mc",
                                   created_date_time=now, event_status=EventStatus.FAR),
        active_period=ActivePeriod(dtstart=start or now + timedelta(minutes=5),
                                   duration=timedelta(minutes=minutes)),
        signals=(EventSignal(intervals=(EventInterval(values=(value,),
                                                      duration=timedelta(minutes=minutes),
                                                      uid="0"),),
                             signal_name="LOAD_DISPATCH", signal_type=SignalType.SETPOINT,
                             signal_id="s1"),),
        target=target,
    )


def events_of(messages: list[Message]) -> DistributeEvent:
    distributes = [m for m in messages if isinstance(m, DistributeEvent)]
    assert distributes, messages
    return distributes[-1]


OK = EiResponse()


@dataclass(frozen=True)
class PushVenTls:
    """A VEN certificate that also serves push on 127.0.0.1 (serverAuth): the VTN accepts a push
    receiver only when it presents the certificate the VEN registered with."""

    fingerprint: str
    client: ssl.SSLContext
    server: ssl.SSLContext


def push_ven_tls(pki: Any, directory: Path, name: str = "push-ven") -> PushVenTls:
    issued = pki.authority.issue(name, Role.VEN, hosts=("127.0.0.1",))
    cert, key = issued.write(directory)
    return PushVenTls(fingerprint=issued.fingerprint,
                      client=client_context(cert=cert, key=key, ca=pki.ca_cert),
                      server=server_context(cert=cert, key=key, ca=pki.ca_cert))


@asynccontextmanager
async def push_receiver(context: ssl.SSLContext,
                        handle: Callable[[web.Request], Awaitable[web.Response]]
                        ) -> AsyncIterator[str]:
    """A TLS push endpoint on 127.0.0.1 (port 0) answering POST /push/{service} with ``handle``;
    yields its transport address."""
    app = web.Application()
    app.router.add_post("/push/{service}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"https://127.0.0.1:{port}/push"
    finally:
        await runner.cleanup()


class _Seen(logging.Handler):
    def __init__(self, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text, self.seen = text, asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


@contextmanager
def logged(logger: str, text: str) -> Iterator[asyncio.Event]:
    """An event set when ``logger`` logs a line containing ``text`` (while the block runs)."""
    watch = _Seen(text)
    logging.getLogger(logger).addHandler(watch)
    try:
        yield watch.seen
    finally:
        logging.getLogger(logger).removeHandler(watch)
