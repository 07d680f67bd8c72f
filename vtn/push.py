"""Push delivery: HTTP push (OpenADR 2.0b profile 9.1, push model) POSTs queued payloads to VENs
that registered for simpleHttp with a transport address and ``httpPullModel`` false; VENs that
registered for XMPP (profile 9.3) get them as IQs through ``xmpp``
(:meth:`vtn.xmpp.XmppTransport.send`) at the JID they registered from. Lanes, order, back-off and
"delivered only once answered" are the same for both.

The outbox is the single source of what a VEN is owed, for pull and push alike. :meth:`wake` notes
VENs whose queue grew; the delivery task (owned by the app's cleanup context) hands each push VEN
to a lane of its own, so VENs are pushed to concurrently and one slow or unreachable VEN never
delays another's payloads. A lane drains its VEN's queue in order, one request at a time, and
claims again only while its last claim said more was waiting (what is queued later wakes it
again); an item is marked delivered only after the VEN answered HTTP 200. A failure releases the
item and the lane backs off on its own: ``retry_s``, doubled after each further failure up to
``max_retry_s``. So does anything else that fails a lane (the database away, or aborting a
transaction as a deadlock; a bug; a row no code expected): the item it claimed is released and
the failure logged (an unexpected one with its traceback, once per run of failures), and only
that lane waits; a scan that fails is tried again after ``retry_s``. Push stops for nobody.
The VEN's reply payload (e.g. oadrCreatedEvent) is handed to the same router as if it had
posted it.

Invariants: every outbound request has a timeout, follows no redirect and reads at most
``max_reply_bytes`` of the reply; every lane is a task of the delivery task's
TaskGroup and ends with it at shutdown (or on its own once its VEN no longer takes pushes); the
client presents the VTN's certificate, verifies the VEN's chain against the configured CA, and
accepts only the certificate whose fingerprint the VEN registered with (the VEN's own); the
address is checked against :class:`vtn.pushtargets.PushTargets` before every push and every
resolved address on every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import aiohttp

from schemas import Message, RemoteProtocolError, Response, Service, TransportName
from schemas.logtext import escaped
from schemas.tls import peer_fingerprint
from vtn.faults import storage_failure
from vtn.pushtargets import PushTargets, TargetResolver
from vtn.services import ROUTES, ServiceContext
from vtn.services.poll import next_message
from vtn.storage import VenRegistration
from vtn.transport import Peer, Router

__all__ = ["PinnedVen", "PushDelivery", "service_for"]

log = logging.getLogger(__name__)

# A send that failed this way was the VEN's or the network's doing (unreachable, refused, timed
# out, a reply that is no payload): the item goes back to the queue and the lane backs off.
_SEND_FAILURES = (aiohttp.ClientError, OSError, RemoteProtocolError)

_SERVICE_BY_KIND = {
    "oadrDistributeEvent": Service.EVENT,
    "oadrRegisterReport": Service.REPORT,
    "oadrCreateReport": Service.REPORT,
    "oadrCancelReport": Service.REPORT,
    "oadrCreatedReport": Service.REPORT,  # the VTN confirms a VEN's requests for its reports
    "oadrUpdateReport": Service.REPORT,  # data of a report the VTN offered
    "oadrCancelPartyRegistration": Service.REGISTER_PARTY,
    "oadrRequestReregistration": Service.REGISTER_PARTY,
}


def service_for(message: Message) -> Service:
    """The VEN endpoint a VTN-initiated payload is pushed to."""
    return _SERVICE_BY_KIND["oadr" + type(message).__name__]


class PinnedVen(aiohttp.Fingerprint):
    """aiohttp's check of a server certificate once the handshake is done (the request's SSL
    context has verified the chain): its OpenADR fingerprint must be the VEN's registered one.
    Not SHA-256 of the whole certificate, as aiohttp's own, so the parent's digest is unused."""

    def __init__(self, fingerprint: str) -> None:
        self._fingerprint = b""
        self._expected = fingerprint.upper()

    def check(self, transport: asyncio.Transport) -> None:
        got = peer_fingerprint(transport)
        if got is None or got.upper() != self._expected:
            host, port, *_ = transport.get_extra_info("peername")
            raise aiohttp.ServerFingerprintMismatch(
                self._expected.encode(), (got or "no certificate").encode(), host, port)


def _log_failure(exc: Exception, what: str, then: str, *, traceback: bool = True) -> bool:
    """A failure of the delivery's own work, not of a send: the database away or aborting a
    transaction is a pause, logged naming its kind; anything else (a bug, a row no code
    expected) is logged as unexpected, with its traceback when ``traceback`` (none was logged
    yet in this run of failures: a lane failing at every back-off repeats only its one line).
    Whether it was unexpected."""
    cause = storage_failure(exc)
    if cause is not None:
        log.warning("%s (%s); %s", what, cause, then)
    elif traceback:
        log.error("%s by an unexpected failure; %s", what, then, exc_info=exc)
    else:
        log.error("%s by an unexpected failure again (%s); %s", what, escaped(repr(exc)), then)
    return cause is None


def _system_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    return context


class PushDelivery:
    def __init__(self, ctx: ServiceContext, route: Router, *,
                 ssl_context: ssl.SSLContext | None, timeout_s: float, retry_s: float,
                 targets: PushTargets | None = None, max_retry_s: float = 300.0,
                 max_reply_bytes: int = 1024 * 1024,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 on_retry: Callable[[], None] = lambda: None,
                 xmpp: Callable[[str, Message], Awaitable[Message | None]] | None = None
                 ) -> None:
        self._ctx = ctx
        self._xmpp = xmpp  # sends to an XMPP VEN's JID and answers its reply
        self._on_retry = on_retry  # a failed push, to be retried (vtn.metrics)
        self._route = route
        # ``ssl_context`` presents the VTN's certificate and need not check host names: the pin
        # is stricter. Without one (development only) the VEN's chain is still verified against
        # the system's CAs, never an unverified context.
        self._ssl = ssl_context or _system_context()
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._retry_s = retry_s
        self._max_retry_s = max(retry_s, max_retry_s)
        self._targets = targets or PushTargets()
        self._max_reply_bytes = max_reply_bytes  # a VEN's reply is read no further than this
        self._sleep = sleep  # a lane's back-off; tests record it instead of waiting
        self._waiting: set[str] = set()
        self._wakeup = asyncio.Event()
        self._first_scan = True
        self._scan_traced = False  # a traceback was logged since the last scan that went
        self._lanes: dict[str, asyncio.Event] = {}
        # each poked lane's registration as the wake's scan read it: its push need not read it
        # again (an activation pokes a lane per device); a lane re-poked after a failure reads
        self._scanned: dict[str, VenRegistration] = {}

    def wake(self, ven_ids: Iterable[str]) -> None:
        """Something was queued for these VENs (push or not: the task filters)."""
        self._waiting.update(ven_ids)
        self._wakeup.set()

    def enrolled(self, registration: VenRegistration) -> None:
        """A VEN's registration, ``registration`` as just stored: :meth:`wake` if it takes
        pushes, so what was queued for it (at this registration, or while it polled) is pushed.
        A polling VEN is never pushed to, so a registration storm of polling VENs costs no scans
        (each would read the woken VENs' rows again only to leave them out)."""
        if self._takes(registration):
            self.wake((registration.ven_id,))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the delivery task for the duration of the block."""
        task = asyncio.create_task(self._run(), name="crowdflex-vtn-push")
        self._wakeup.set()  # deliver what was queued while the VTN was down
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as lanes:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                waiting, self._waiting = self._waiting, set()
                try:
                    targets = await self._targets_of(waiting)
                except Exception as exc:
                    # Nothing that fails a scan may end push for good (the database away, or a
                    # bug): every push VEN is read again after ``retry_s``.
                    self._scan_traced |= _log_failure(
                        exc, "push delivery paused", f"retrying in {self._retry_s} s",
                        traceback=not self._scan_traced)
                    self._first_scan = True
                    asyncio.get_running_loop().call_later(self._retry_s, self.wake, ())
                    continue
                self._scan_traced = False
                for registration in targets:
                    self._poke(lanes, registration)

    async def _targets_of(self, waiting: set[str]) -> list[VenRegistration]:
        # Only the waiting VENs' rows after the first scan: reading every active VEN per wake
        # cost a registration storm (one wake per few registrations) time growing with the fleet.
        vens = self._ctx.storage.vens
        found = await (vens.active() if self._first_scan else vens.get_many(waiting))
        self._first_scan = False
        return sorted((v for v in found if self._takes(v)), key=lambda v: v.ven_id)

    def _takes(self, registration: VenRegistration) -> bool:
        """Whether the VEN is sent its payloads (rather than polling for them)."""
        if not registration.active or not registration.transport_address:
            return False
        if registration.transport_name == TransportName.XMPP:
            return self._xmpp is not None
        return not registration.http_pull_model

    def _poke(self, lanes: asyncio.TaskGroup, registration: VenRegistration) -> None:
        ven_id = registration.ven_id
        self._scanned[ven_id] = registration
        poked = self._lanes.get(ven_id)
        if poked is None:
            poked = self._lanes[ven_id] = asyncio.Event()
            lanes.create_task(self._lane(ven_id, poked), name=f"crowdflex-vtn-push:{ven_id}")
        poked.set()

    async def _lane(self, ven_id: str, poked: asyncio.Event) -> None:
        """Push to one VEN while it takes pushes, backing off after failures."""
        failures = 0
        traced = False  # a traceback was logged since the last push that went
        try:
            while True:
                await poked.wait()
                poked.clear()
                try:
                    delivered = await self._push(ven_id)
                except Exception as exc:
                    # Whatever it is, it stays this lane's: the scan and the other VENs' lanes
                    # go on, and this one backs off and tries again.
                    traced |= _log_failure(exc, f"push to {ven_id} paused", "backing off",
                                           traceback=not traced)
                    delivered = False
                if delivered is None:
                    return
                if delivered:
                    failures, traced = 0, False
                    continue
                failures += 1
                await self._sleep(min(self._retry_s * 2 ** (failures - 1), self._max_retry_s))
                poked.set()
        finally:
            del self._lanes[ven_id]
            self._scanned.pop(ven_id, None)

    async def _push(self, ven_id: str) -> bool | None:
        """Push what is queued for the VEN: True when all went, False after a failure (the item
        was released), None when the VEN no longer takes pushes (its lane ends)."""
        registration = self._scanned.pop(ven_id, None) or await self._ctx.storage.vens.get(ven_id)
        if registration is None or not self._takes(registration):
            return None
        address = registration.transport_address
        assert address is not None  # _takes
        if registration.transport_name == TransportName.XMPP:
            xmpp = self._xmpp
            assert xmpp is not None  # _takes
            return await self._drain(registration, lambda message: xmpp(address, message))
        try:
            self._targets.check_address(address)
        except RemoteProtocolError as refused:  # registered before these rules, or config
            log.warning("not pushing to %s: %s", ven_id, escaped(refused.reason))
            return None
        connector = aiohttp.TCPConnector(ssl=PinnedVen(registration.fingerprint),
                                         resolver=TargetResolver(self._targets))
        async with aiohttp.ClientSession(connector=connector, timeout=self._timeout) as session:
            return await self._drain(registration, lambda message: self._post(
                session, f"{address.rstrip('/')}/{service_for(message)}", message))

    async def _drain(self, registration: VenRegistration,
                     send: Callable[[Message], Awaitable[Message | None]]) -> bool:
        """Send the VEN its queue in order with ``send``, one claimed item at a time: what
        :meth:`_push` returns. A claimed item that was not marked delivered, whatever failed, is
        released for the next try (if even that fails, its lease runs out instead)."""
        ven_id = registration.ven_id
        while (found := await next_message(self._ctx, ven_id, mark=False)) is not None:
            message, item = found
            try:
                reply = await send(message)
                await self._ctx.storage.outbox.mark_delivered(item.seq, at=self._ctx.clock())
            except Exception as exc:
                with contextlib.suppress(Exception):
                    await self._ctx.storage.outbox.release(item)
                if not isinstance(exc, _SEND_FAILURES):
                    raise
                log.warning("push to %s failed: %s", ven_id, escaped(repr(exc)))
                self._on_retry()
                return False
            await self._route_reply(registration, service_for(message), reply)
            if not item.more_waiting:
                break
        return True

    async def _route_reply(self, registration: VenRegistration, service: Service,
                           reply: Message | None) -> None:
        """The VEN's answer to a payload sent to it, handled as if it had sent it itself. One the
        services refuse (an answer to an event modified since it was sent: 450) is logged; the
        VEN gets the newer payload next, and nobody waits for a reply to the answer."""
        if reply is not None and type(reply) in ROUTES[service] and not isinstance(reply, Response):
            try:
                await self._route(service, Peer(registration.fingerprint), reply)
            except RemoteProtocolError as refused:
                log.warning("answer from %s refused: %s", registration.ven_id, escaped(refused))

    async def _post(self, session: aiohttp.ClientSession, url: str, message: Message) -> Message:
        body = self._ctx.codec.encode(message)
        # No redirect is followed: its target would skip the address rules (an IP literal never
        # reaches TargetResolver) and could be plain http.
        async with session.post(url, data=body, ssl=self._ssl, allow_redirects=False,
                                headers={"Content-Type": "application/xml"}) as reply:
            if reply.status != 200:
                raise aiohttp.ClientResponseError(reply.request_info, (), status=reply.status)
            data = bytearray()
            async for chunk in reply.content.iter_any():
                data += chunk
                if len(data) > self._max_reply_bytes:  # leaving unread closes the connection
                    raise aiohttp.ClientPayloadError(
                        f"push reply longer than {self._max_reply_bytes} bytes")
            return self._ctx.codec.decode(bytes(data))
