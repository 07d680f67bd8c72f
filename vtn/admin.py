"""The VTN's admin JSON API: operators and back-office systems drive the VTN over HTTP.

A separate :class:`web.Application` (own port, by default on 127.0.0.1) sharing the VTN app's
state through its ``SERVICES`` key; every request needs ``Authorization: Bearer <admin_token>``,
compared in constant time. Endpoints and curl examples: the README, "Admin API".

Invariants: the admin API changes state only through :mod:`vtn.services` (the same code paths the
protocol uses), so an event created here is fanned out, queued and tracked exactly as any other.
Every body and query is read by :mod:`vtn.admin_input`: bad input is a 400 with a reason, an
unknown VEN/event/subscription a 404, an ID already in use a 409; never a 500 traceback. A new
event, or a modify of a live one, that ends before now is a 400: completed at once, it would
reach no VEN (or drop from its VENs' lists).
A cancelled or completed event is final (:class:`vtn.services.events.EventFinal`): a modify of it
is a 409 naming it and why, and so is a cancel of a completed one; cancelling a cancelled one
again is a 200 with ``already_cancelled`` and nothing sent.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from schemas import LocalProtocolError, ReportRequest, new_id
from vtn.admin_input import (
    BadInput,
    event_of,
    id_of,
    json_object,
    memberships_of,
    new_event_id,
    subscription_of,
    time_of,
)
from vtn.services import ServiceContext, events, registration, reports
from vtn.storage import EventStatus

__all__ = ["MIN_TOKEN_CHARS", "create_admin_app"]

#: the shortest bearer token the admin API accepts
MIN_TOKEN_CHARS = 16

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_SERVICES_OF: web.AppKey[Callable[[], ServiceContext]] = web.AppKey("crowdflex.vtn.admin.services")


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def _dumps(data: object) -> str:
    def default(value: object) -> object:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, timedelta):
            return value.total_seconds()
        if isinstance(value, tuple | frozenset | set):
            return list(value)
        return str(value)

    return json.dumps(data, default=default)


def _guarded(handler: Handler) -> Handler:
    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except (KeyError, IndexError):
            raise  # a bug here, not an unknown ID: never a 404
        except LookupError as exc:
            raise web.HTTPNotFound(text=str(exc)) from None
        except events.EventFinal as exc:
            raise web.HTTPConflict(text=str(exc)) from None
        except (ValueError, LocalProtocolError) as exc:
            raise web.HTTPBadRequest(text=f"bad request: {exc}") from None

    return run


async def _body(request: web.Request) -> dict[str, Any]:
    return json_object(await request.read())


def _path_id(request: web.Request, key: str) -> str:
    return id_of(request.match_info[key], key)


def create_admin_app(services: Callable[[], ServiceContext], *, token: str,
                     public: Iterable[web.RouteDef] = ()) -> web.Application:
    """The admin app; ``services`` returns the running VTN's context (e.g.
    ``lambda: vtn_app[SERVICES]``), read per request because it exists only after startup.
    ``public`` routes are served without the token (:func:`vtn.ops.ops_routes`)."""
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"the admin token must be at least {MIN_TOKEN_CHARS} characters")
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def bearer(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.route.resource in open_paths:
            return await handler(request)
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    app = web.Application(middlewares=[bearer], client_max_size=256 * 1024)
    app[_SERVICES_OF] = services
    open_paths = frozenset(route.resource for route in app.router.add_routes(public))
    routes = (
        ("GET", "/vens", _list_vens),
        ("PUT", "/vens/{ven_id}/memberships", _set_memberships),
        ("POST", "/vens/{ven_id}/reregister", _reregister),
        ("POST", "/vens/{ven_id}/cancel", _cancel_registration),
        ("POST", "/vens/{ven_id}/evict", _evict),
        ("GET", "/vens/{ven_id}/opts", _list_opts),
        ("GET", "/vens/{ven_id}/reports", _list_reports),
        ("POST", "/vens/{ven_id}/reports/subscriptions", _subscribe),
        ("DELETE", "/vens/{ven_id}/reports/subscriptions/{rrid}", _unsubscribe),
        ("GET", "/vens/{ven_id}/reports/data", _report_data),
        ("GET", "/events", _list_events),
        ("POST", "/events", _create_event),
        ("GET", "/events/{event_id}", _get_event),
        ("PUT", "/events/{event_id}", _modify_event),
        ("POST", "/events/{event_id}/cancel", _cancel_event),
    )
    for method, path, handler in routes:
        app.router.add_route(method, path, _guarded(handler))
    return app


def _ctx(request: web.Request) -> ServiceContext:
    return request.app[_SERVICES_OF]()


async def _ven(ctx: ServiceContext, ven_id: str) -> None:
    found = await ctx.storage.vens.get(ven_id)
    if found is None:
        raise LookupError(f"no VEN {ven_id!r}")


# ---------------------------------------------------------------- VENs
async def _list_vens(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    rows = []
    for ven in await ctx.storage.vens.active():
        members = await ctx.storage.vens.memberships(ven.ven_id)
        rows.append({
            "ven_id": ven.ven_id, "ven_name": ven.ven_name,
            "registration_id": ven.registration_id, "registered_at": ven.created_at,
            "http_pull_model": ven.http_pull_model, "transport_address": ven.transport_address,
            "memberships": [{"kind": m.kind.value, "value": m.value} for m in members],
            "queued": await ctx.storage.outbox.pending_count(ven.ven_id),
        })
    return _json({"vens": rows})


async def _set_memberships(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    ven_id = _path_id(request, "ven_id")
    await _ven(ctx, ven_id)
    members = memberships_of(await _body(request))
    changed = await events.set_memberships(ctx, ven_id, members)
    return _json({"ven_id": ven_id, "memberships": len(set(members)),
                  "events_changed": list(changed)})


async def _reregister(request: web.Request) -> web.Response:
    ven_id = _path_id(request, "ven_id")
    await registration.request_reregistration(_ctx(request), ven_id)
    return _json({"queued": "oadrRequestReregistration", "ven_id": ven_id}, status=202)


async def _cancel_registration(request: web.Request) -> web.Response:
    ven_id = _path_id(request, "ven_id")
    request_id = await registration.cancel_from_vtn(_ctx(request), ven_id)
    return _json({"queued": "oadrCancelPartyRegistration", "request_id": request_id}, status=202)


async def _evict(request: web.Request) -> web.Response:
    ven_id = request.match_info["ven_id"]
    dropped, closed = await registration.evict(_ctx(request), ven_id)
    return _json({"evicted": ven_id, "dropped": dropped, "connections_closed": closed})


async def _list_opts(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    ven_id = _path_id(request, "ven_id")
    await _ven(ctx, ven_id)
    include = request.query.get("include_cancelled") == "true"
    opts = await ctx.storage.opts.for_ven(ven_id, include_cancelled=include)
    return _json({"opts": [{
        "opt_id": o.opt_id, "opt_type": o.opt_type.value, "opt_reason": o.opt_reason,
        "market_context": o.market_context, "resource_id": o.resource_id,
        "event_id": o.event_id, "created_at": o.created_at, "cancelled_at": o.cancelled_at,
        "windows": [{"start": w.starts_at, "duration_s": w.duration} for w in o.windows],
    } for o in opts]})


# ---------------------------------------------------------------- reports
async def _list_reports(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    ven_id = _path_id(request, "ven_id")
    await _ven(ctx, ven_id)
    registered = await ctx.storage.reports.descriptions(ven_id)
    requests = await ctx.storage.reports.requests(ven_id)
    return _json({
        "registered": [{"report_specifier_id": d.report_specifier_id,
                        "report_name": d.report_name, "r_ids": d.r_ids,
                        "registered_at": d.registered_at} for d in registered],
        "subscriptions": [{"report_request_id": r.report_request_id,
                           "report_specifier_id": r.report_specifier_id, "r_ids": r.r_ids,
                           "granularity_s": r.granularity, "status": r.status.value,
                           "created_at": r.created_at, "refusal_code": r.refusal_code,
                           "refusal_reason": r.refusal_reason} for r in requests],
    })


async def _subscribe(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    ven_id = _path_id(request, "ven_id")
    await _ven(ctx, ven_id)
    report_request = subscription_of(await _body(request), request_id=new_id(),
                                     default_granularity=ctx.default_granularity)
    await _check_offered(ctx, ven_id, report_request)
    rrid = report_request.report_request_id
    if await ctx.storage.reports.get_request(ven_id, rrid) is not None:
        raise web.HTTPConflict(text=f"subscription {rrid!r} exists; DELETE cancels it")
    await reports.subscribe(ctx, ven_id, report_request)
    return _json({"report_request_id": report_request.report_request_id}, status=201)


async def _check_offered(ctx: ServiceContext, ven_id: str, request: ReportRequest) -> None:
    """A VEN only sends reports its oadrRegisterReport offered: anything else it would refuse."""
    spec = request.report_specifier
    offered = {d.report_specifier_id: d.r_ids
               for d in await ctx.storage.reports.descriptions(ven_id)}
    r_ids = offered.get(spec.report_specifier_id)
    if r_ids is None:
        raise BadInput(f"VEN {ven_id!r} never offered report {spec.report_specifier_id!r} "
                       f"(it offered: {', '.join(sorted(offered)) or 'none'})")
    missing = [p.r_id for p in spec.specifier_payloads if p.r_id not in r_ids]
    if missing:
        raise BadInput(f"report {spec.report_specifier_id!r} of VEN {ven_id!r} has no rID "
                       f"{missing[0]!r} (it has: {', '.join(r_ids)})")


async def _unsubscribe(request: web.Request) -> web.Response:
    ven_id, rrid = _path_id(request, "ven_id"), _path_id(request, "rrid")
    if not await reports.cancel_subscription(_ctx(request), ven_id, rrid):
        raise LookupError(f"no subscription {rrid!r} for VEN {ven_id!r}")
    return _json({"cancelled": rrid})


async def _report_data(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    ven_id = _path_id(request, "ven_id")
    await _ven(ctx, ven_id)
    query = request.query
    end = time_of(query["end"], "end") if "end" in query else ctx.clock()
    start = time_of(query["start"], "start") if "start" in query else end - timedelta(hours=1)
    points = await ctx.storage.reports.points(
        ven_id, start, end, r_id=request.query.get("r_id"),
        report_specifier_id=request.query.get("report_specifier_id"))
    return _json({"points": [{
        "report_request_id": p.report_request_id, "report_specifier_id": p.report_specifier_id,
        "r_id": p.r_id, "dtstart": p.dtstart, "duration_s": p.duration, "value": p.value,
        "data_quality": p.data_quality, "received_at": p.received_at,
    } for p in points]})


# ---------------------------------------------------------------- events
async def _event_json(ctx: ServiceContext, event_id: str) -> dict[str, object]:
    record = await ctx.storage.events.get(event_id)
    if record is None:
        raise LookupError(f"no event {event_id!r}")
    deliveries = await ctx.storage.events.deliveries(event_id)
    return {
        "event_id": record.event_id, "modification_number": record.modification_number,
        "status": record.status.value, "market_context": record.market_context,
        "start": record.starts_at, "end": record.ends_at,
        "targets": [{"kind": t.kind.value, "value": t.value} for t in record.targets],
        "deliveries": [{
            "ven_id": d.ven_id, "delivered_modification_number": d.delivered_modification_number,
            "delivered_at": d.delivered_at, "ack_modification_number": d.ack_modification_number,
            "opt_type": None if d.ack_opt_type is None else d.ack_opt_type.value,
            "response_code": d.ack_response_code, "ack_at": d.ack_at,
        } for d in deliveries],
    }


async def _list_events(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    return _json({"events": [await _event_json(ctx, r.event_id)
                             for r in await ctx.storage.events.query()]})


async def _get_event(request: web.Request) -> web.Response:
    return _json(await _event_json(_ctx(request), _path_id(request, "event_id")))


async def _create_event(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    body = await _body(request)
    event_id = new_event_id(body) or new_id()
    if await ctx.storage.events.get(event_id) is not None:
        raise web.HTTPConflict(text=f"event {event_id!r} exists; PUT modifies it")
    event = event_of(body, event_id, ctx.clock())
    events.refuse_ended(ctx, event, "it would reach no VEN")
    targeted = await events.publish_event(ctx, event)
    return _json({"event_id": event_id, "modification_number": 0, "targeted": targeted},
                 status=201)


async def _modify_event(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    event_id = _path_id(request, "event_id")
    targeted = await events.modify_event(ctx, event_of(await _body(request), event_id,
                                                        ctx.clock()))
    record = await ctx.storage.events.get(event_id)
    assert record is not None
    return _json({"event_id": event_id, "modification_number": record.modification_number,
                  "targeted": targeted})


async def _cancel_event(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    event_id = _path_id(request, "event_id")
    before = await ctx.storage.events.get(event_id)
    if before is None:
        raise LookupError(f"no event {event_id!r}")
    await events.cancel_event(ctx, event_id)
    return _json({**await _event_json(ctx, event_id),
                  "already_cancelled": before.status is EventStatus.CANCELLED})
