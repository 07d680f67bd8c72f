"""HTTP push delivery (OpenADR 2.0b profile 8, push model): POST queued payloads to VENs that
registered with a transport address and ``httpPullModel`` false.

The outbox is the single source of what a VEN is owed, for pull and push alike. :meth:`wake` notes
VENs whose queue grew; one task (owned by the app's cleanup context) drains them in order, one
request at a time per VEN. An item is marked delivered only after the VEN answered HTTP 200; a
failure releases it and retries after ``retry_s``. The VEN's reply payload (e.g. oadrCreatedEvent,
oadrCreatedReport) is handed to the same dispatcher as if the VEN had posted it.

Invariants: every outbound request has a timeout; the task ends at app shutdown; the client
presents the VTN's certificate and verifies the VEN's against the configured CA (mutual TLS).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import aiohttp

from schemas import Message, RemoteProtocolError, Response
from vtn.faults import storage_failure
from vtn.services import ROUTES, ServiceContext
from vtn.services.poll import next_message
from vtn.transport import Peer, Service

__all__ = ["PushDelivery", "service_for"]

log = logging.getLogger(__name__)

Dispatch = Callable[[Service, Peer, Message], Awaitable[Message]]

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


class PushDelivery:
    def __init__(self, ctx: ServiceContext, dispatch: Dispatch, *,
                 ssl_context: ssl.SSLContext | None, timeout_s: float, retry_s: float,
                 on_retry: Callable[[], None] = lambda: None) -> None:
        self._ctx = ctx
        self._on_retry = on_retry  # a failed push, to be retried (vtn.metrics)
        self._dispatch = dispatch
        self._ssl = ssl_context
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._retry_s = retry_s
        self._waiting: set[str] = set()
        self._wakeup = asyncio.Event()
        self._first_scan = True

    def wake(self, ven_ids: Iterable[str]) -> None:
        """Something was queued for these VENs (push or not: the task filters)."""
        self._waiting.update(ven_ids)
        self._wakeup.set()

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
        async with aiohttp.ClientSession(timeout=self._timeout) as session:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                waiting, self._waiting = self._waiting, set()
                try:
                    await self._deliver(session, waiting)
                except Exception as exc:
                    # The database being away must not end push for good: rescan once it is back.
                    cause = storage_failure(exc)
                    if cause is None:
                        raise
                    log.warning("push delivery paused (%s); retrying in %s s", cause, self._retry_s)
                    self._first_scan = True
                    asyncio.get_running_loop().call_later(self._retry_s, self.wake, ())

    async def _deliver(self, session: aiohttp.ClientSession, waiting: set[str]) -> None:
        pushed = {v.ven_id: v for v in await self._ctx.storage.vens.active()
                  if not v.http_pull_model and v.transport_address}
        targets = set(pushed) if self._first_scan else waiting & set(pushed)
        self._first_scan = False
        for ven_id in sorted(targets):
            reg = pushed[ven_id]
            assert reg.transport_address is not None
            if not await self._drain(session, reg.ven_id, reg.fingerprint,
                                     reg.transport_address):
                asyncio.get_running_loop().call_later(
                    self._retry_s, self.wake, (reg.ven_id,))

    async def _drain(self, session: aiohttp.ClientSession, ven_id: str, fingerprint: str,
                     address: str) -> bool:
        """Push everything queued for one VEN; False after a failure (the item was released)."""
        while (found := await next_message(self._ctx, ven_id, mark=False)) is not None:
            message, item = found
            service = service_for(message)
            try:
                reply = await self._post(session, f"{address.rstrip('/')}/{service}", message)
            except (aiohttp.ClientError, TimeoutError, RemoteProtocolError) as exc:
                log.warning("push to %s failed: %r", ven_id, exc)
                self._on_retry()
                await self._ctx.storage.outbox.release(item.seq)
                return False
            await self._ctx.storage.outbox.mark_delivered(item.seq, at=self._ctx.clock())
            if type(reply) in ROUTES[service] and not isinstance(reply, Response):
                await self._dispatch(service, Peer(fingerprint), reply)
        return True

    async def _post(self, session: aiohttp.ClientSession, url: str, message: Message) -> Message:
        body = self._ctx.codec.encode(message)
        async with session.post(url, data=body, ssl=self._ssl if self._ssl else True,
                                headers={"Content-Type": "application/xml"}) as reply:
            if reply.status != 200:
                raise aiohttp.ClientResponseError(reply.request_info, (), status=reply.status)
            return self._ctx.codec.decode(await reply.read())
