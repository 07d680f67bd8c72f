"""Which handler answers which payload on which service (OpenADR 2.0b profile 8, one table).

A valid payload posted to a service that does not take it (e.g. oadrCreatedEvent to EiReport) is
453 (not recognised) via :func:`vtn.transport.wrong_service`. A VEN's bare oadrResponse (its answer
to a payload the VTN queued, e.g. oadrRequestReregistration) is accepted on every service but
OadrPoll.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import schemas as s
from schemas import EiResponse, Message, Response, Service
from vtn.transport import Peer, Router, wrong_service

from . import events, offered, opt, poll, registration, reports
from ._context import ServiceContext, require_ven

__all__ = ["ROUTES", "make_router"]

# Any: each handler takes the one Message class ROUTES files it under, which a Callable cannot
# say of a table keyed by that class; make_router looks it up by type(message).
Handler = Callable[[ServiceContext, Peer, Any], Awaitable[Message]]


async def _on_response(ctx: ServiceContext, peer: Peer, msg: Response) -> Response:
    registration_ = await require_ven(ctx, peer, msg.ven_id)
    return Response(response=EiResponse(request_id=msg.response.request_id),
                    ven_id=registration_.ven_id)


ROUTES: Final[dict[Service, dict[type[Message], Handler]]] = {
    Service.REGISTER_PARTY: {
        s.QueryRegistration: registration.on_query,
        s.CreatePartyRegistration: registration.on_create,
        s.CancelPartyRegistration: registration.on_cancel,
        s.CanceledPartyRegistration: registration.on_canceled,
        Response: _on_response,
    },
    Service.EVENT: {
        s.RequestEvent: events.on_request_event,
        s.CreatedEvent: events.on_created_event,
        Response: _on_response,
    },
    Service.REPORT: {
        s.RegisterReport: reports.on_register_report,
        s.RegisteredReport: offered.on_registered_report,
        s.CreatedReport: reports.on_created_report,
        s.UpdateReport: reports.on_update_report,
        s.CreateReport: offered.on_create_report,
        s.CancelReport: offered.on_cancel_report,
        s.CanceledReport: reports.on_canceled_report,
        s.UpdatedReport: offered.on_updated_report,
        Response: _on_response,
    },
    Service.OPT: {
        s.CreateOpt: opt.on_create_opt,
        s.CancelOpt: opt.on_cancel_opt,
        Response: _on_response,
    },
    Service.POLL: {
        s.Poll: poll.on_poll,
    },
}


def make_router(ctx: ServiceContext) -> Router:
    """The transport's router over ``ctx``: :data:`ROUTES`, or 453 for a payload the service does
    not take."""

    async def route(service: Service, peer: Peer, message: Message) -> Message:
        handler = ROUTES[service].get(type(message))
        if handler is None:
            raise wrong_service(service, message)
        return await handler(ctx, peer, message)

    return route
