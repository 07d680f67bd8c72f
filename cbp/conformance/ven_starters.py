"""How ``crowdflex conformance ven`` brings up the VEN under test against the harness VTN.

A :class:`VenUnderTest` is started once with the harness's address (its Simple HTTP root, or its
XMPP server and JID) and stopped after the last case. :class:`CommandVen` runs any product's
start command with the address in its environment (:func:`address_environment`);
:class:`PromptVen` asks a person to point the VEN at the harness; :class:`CrowdflexVen` runs
crowdflex's own VEN client in this process, and is also the :class:`~cbp.conformance.Operator`
that makes it send and cancel opts through the client's opt API (over either transport).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol, TextIO, assert_never

from cbp.net import free_port
from schemas import (
    SERVICE_PREFIX,
    Availability,
    Codec,
    OptReason,
    OptType,
    QualifiedEventId,
    ReadingType,
    ReportDescription,
    ReportInterval,
    ReportPayload,
    ReportRequest,
    ReportType,
    Target,
)
from schemas.identity import TlsProfile, fingerprint_from_pem
from ven import Connection, Hooks, PushReceiver, VenClient, VenError, VenSettings, VtnRefused
from ven.config import TransportMode, VenConfig, VenXmpp, wire_codec
from ven.tls import client_context, server_context

from ._model import OperatorError
from .operators import Step, StepKind
from .vtn_address import HttpAddress, VtnAddress, XmppAddress

__all__ = [
    "URL_VARIABLE",
    "XMPP_VARIABLES",
    "CommandVen",
    "CrowdflexVen",
    "PromptVen",
    "VenUnderTest",
    "address_environment",
]

#: the environment variable that carries the harness VTN's URL to a start command
URL_VARIABLE: Final = "CROWDFLEX_CONFORMANCE_VTN_URL"
#: over XMPP, the variables that carry the server's host, port and domain and the harness VTN's
#: full JID to a start command
XMPP_VARIABLES: Final = ("CROWDFLEX_CONFORMANCE_XMPP_HOST", "CROWDFLEX_CONFORMANCE_XMPP_PORT",
                         "CROWDFLEX_CONFORMANCE_XMPP_DOMAIN", "CROWDFLEX_CONFORMANCE_VTN_JID")


def address_environment(address: VtnAddress) -> dict[str, str]:
    """The variables a start command finds the harness by: :data:`URL_VARIABLE` over Simple
    HTTP, :data:`XMPP_VARIABLES` over XMPP."""
    match address:
        case HttpAddress():
            return {URL_VARIABLE: address.url}
        case XmppAddress():
            return dict(zip(XMPP_VARIABLES, (address.host, str(address.port), address.domain,
                                             address.jid), strict=True))
        case _:
            assert_never(address)


class VenUnderTest(Protocol):
    async def start(self, address: VtnAddress) -> None: ...

    async def stop(self) -> None: ...


class CommandVen:
    """Runs ``command`` through the shell with the harness's address in its environment
    (:func:`address_environment`); on stop, its whole process group gets SIGTERM, then SIGKILL
    after ``grace_s``."""

    def __init__(self, command: str, *, grace_s: float = 10.0) -> None:
        self.command = command
        self.grace_s = grace_s
        self._process: asyncio.subprocess.Process | None = None

    async def start(self, address: VtnAddress) -> None:
        self._process = await asyncio.create_subprocess_shell(
            self.command, env={**os.environ, **address_environment(address)},
            start_new_session=True)

    async def stop(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(self.grace_s):
                await process.wait()
        except TimeoutError:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


class PromptVen:
    """Tells a person at the terminal where to point the VEN; the first case waits for it."""

    def __init__(self, *, output: TextIO | None = None) -> None:
        self.output = output or sys.stdout

    async def start(self, address: VtnAddress) -> None:
        match address:
            case HttpAddress():
                where = f"{address.url} (pull mode)"
            case XmppAddress():
                where = (f"the XMPP server {address.host}:{address.port} (domain "
                         f"{address.domain}), sending to the VTN's JID {address.jid}")
            case _:
                assert_never(address)
        print(f"Point the VEN under test at {where} and start it; the cases wait for its "
              "registration.", file=self.output, flush=True)

    async def stop(self) -> None:
        print("The run is over: the VEN under test may be stopped.", file=self.output, flush=True)


class CrowdflexVen:
    """crowdflex's VEN client in this process: it opts in to every event and offers one
    TELEMETRY_USAGE report of rID ``meter``, whose samples read 1.5 kW. With ``push`` it serves
    its own HTTPS receiver on ``push_host`` (any free port; its own certificate) and
    registers for push instead of polling. With ``signed`` its ``[signatures]`` configuration
    signs with its own certificate, trusts signers chaining to ``ca`` and requires signatures.
    Given an :class:`XmppAddress` it reaches the harness over XMPP (:class:`ven.xmpp.XmppLink`,
    logging in with its certificate, trusting a server certificate chaining to ``ca``), where
    the VTN sends without polls; ``push`` and ``push_host`` are then unused. As the VEN's
    operator (:meth:`perform`) it sends and cancels opts through the client's opt API, once
    registered; a step not done within ``timeout_s`` fails."""

    def __init__(self, *, cert: Path, key: Path, ca: Path, ven_name: str = "crowdflex-ven",
                 tls_profile: TlsProfile = TlsProfile.OPENADR_TLS12_OR_TLS13,
                 push: bool = False, push_host: str = "127.0.0.1", signed: bool = False,
                 timeout_s: float = 30.0) -> None:
        self.cert, self.key, self.ca = cert, key, ca
        self.ven_name = ven_name
        self.tls_profile = tls_profile
        self.push, self.push_host = push, push_host
        self.signed = signed
        self._client: VenClient | None = None
        self._receiver: PushReceiver | None = None
        self._run: asyncio.Task[None] | None = None
        self._registered = asyncio.Event()
        self.timeout_s = timeout_s

    async def start(self, address: VtnAddress) -> None:
        match address:
            case HttpAddress():
                await self._start_http(address.url)
            case XmppAddress():
                await self._start_xmpp(address)
            case _:
                assert_never(address)

    async def _start_xmpp(self, address: XmppAddress) -> None:
        tls = client_context(cert=self.cert, key=self.key, ca=self.ca, profile=self.tls_profile)
        config = self._config(address)
        assert config.xmpp is not None
        link = config.xmpp.link(fingerprint=fingerprint_from_pem(self.cert.read_bytes()),
                                ssl_context=tls, codec=self._codec(address),
                                request_timeout_s=config.request_timeout.total_seconds())
        client = VenClient(VenSettings(
            ven_name=self.ven_name,
            connection=Connection(vtn_url=address.jid, ssl_context=None, link=link),
            hooks=_HOOKS))
        await client.start()
        link.serve(client)
        self._client = client
        self._run = asyncio.create_task(self._register(client, poll=False))

    async def _start_http(self, url: str) -> None:
        push_url, port = None, 0
        if self.push:
            # the client must know its URL before the receiver can be built around it
            port = free_port(self.push_host)
            push_url = f"https://{self.push_host}:{port}{SERVICE_PREFIX}"
        tls = client_context(cert=self.cert, key=self.key, ca=self.ca, profile=self.tls_profile)
        client = VenClient(VenSettings(
            ven_name=self.ven_name,
            connection=Connection(vtn_url=url, ssl_context=tls, push_url=push_url,
                                  codec=self._codec(HttpAddress(url=url))),
            hooks=_HOOKS))
        await client.start()
        self._client = client
        if self.push:
            context = server_context(cert=self.cert, key=self.key, ca=self.ca,
                                     profile=self.tls_profile)
            self._receiver = PushReceiver(client, context, host=self.push_host, port=port)
            await self._receiver.start()
        self._run = asyncio.create_task(self._register(client, poll=not self.push))

    def _config(self, address: VtnAddress) -> VenConfig:
        """The ``crowdflex ven`` configuration with these files reaching ``address`` (over HTTP
        a pull one: the push receiver is built here, on a port found at start)."""
        match address:
            case HttpAddress():
                mode, url, xmpp = TransportMode.PULL, address.url, None
            case XmppAddress():
                mode, url = TransportMode.XMPP, ""
                xmpp = VenXmpp(vtn_jid=address.jid, host=address.host, port=address.port,
                               domain=address.domain)
            case _:
                assert_never(address)
        return VenConfig(
            vtn_url=url, ven_name=self.ven_name, tls_cert=self.cert, tls_key=self.key,
            tls_ca=self.ca, tls_profile=self.tls_profile, mode=mode, xmpp=xmpp,
            sign_payloads=self.signed, require_signatures=self.signed,
            trusted_signers=(self.ca,) if self.signed else ())

    def _codec(self, address: VtnAddress) -> Codec:
        """The codec that configuration builds."""
        return wire_codec(self._config(address))

    async def _register(self, client: VenClient, *, poll: bool) -> None:
        await client.register()
        self._registered.set()
        await client.register_reports((ReportDescription(
            r_id="meter", report_type=ReportType.USAGE, reading_type=ReadingType.DIRECT_READ),))
        if poll:
            await client.start_polling()

    async def perform(self, step: Step) -> None:
        """Send the opt payload ``step`` asks for, once the VEN is registered; done once the VTN
        answered, whatever it answered (the case judges the answer)."""
        if self._client is None:
            raise OperatorError("crowdflex's VEN is not running")
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._registered.wait()
                await self._send(self._client, step)
        except TimeoutError:
            raise OperatorError(f"not done within {self.timeout_s:g} s") from None

    async def _send(self, client: VenClient, step: Step) -> None:
        try:
            match step.kind:
                case StepKind.CREATE_OPT:
                    await _create_opt(client, step.params)
                case StepKind.CANCEL_OPT:
                    await client.cancel_opt(step.params["opt_id"])
                case _:
                    raise OperatorError(f"{step.kind.value} is a VTN's step, not the VEN's")
        except VtnRefused:
            return
        except VenError as exc:
            raise OperatorError(f"crowdflex's VEN could not send it: {exc}") from None

    async def stop(self) -> None:
        if self._run is not None:
            self._run.cancel()
            await asyncio.gather(self._run, return_exceptions=True)
        if self._receiver is not None:
            await self._receiver.stop()
        if self._client is not None:
            await self._client.close()


async def _create_opt(client: VenClient, params: Mapping[str, Any]) -> None:
    """oadrCreateOpt from a create_opt step's parameters (a schedule or an event)."""
    event = None
    if "event_id" in params:
        event = QualifiedEventId(event_id=params["event_id"],
                                 modification_number=params["modification_number"])
    schedule = None
    if "availability" in params:
        schedule = tuple(Availability(dtstart=datetime.fromisoformat(a["start"]),
                                      duration=timedelta(seconds=a["duration_s"]))
                         for a in params["availability"])
    await client.create_opt(
        opt_type=OptType(params["opt_type"]), opt_reason=OptReason(params["opt_reason"]),
        vavailability=schedule, qualified_event_id=event, market_context=params["market_context"],
        target=Target(**{kind: tuple(ids) for kind, ids in params["targets"].items()}))


def _meter(request: ReportRequest, since: datetime, until: datetime
           ) -> Sequence[ReportInterval]:
    return (ReportInterval(payloads=(ReportPayload(r_id="meter", value=1.5),), dtstart=since,
                           duration=until - since),)


_HOOKS: Final = Hooks(on_event=lambda event: OptType.OPT_IN, report_provider=_meter)
