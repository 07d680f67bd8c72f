"""The five OpenADR 2.0b services of the VTN, over :mod:`vtn.storage`.

One module per service (registration, events, reports, opt, poll) holds its handlers and the
VTN-initiated operations the admin API and applications call (publish an event, subscribe to a
report, request re-registration...). :func:`make_router` maps (service, payload class) to
handlers for :func:`vtn.transport.add_routes`.

Every handler is ``async (ServiceContext, Peer, message) -> reply`` and returns only after the
state its reply describes is committed.
"""

from __future__ import annotations

from . import events, opt, poll, registration, reports
from ._context import RegistrationPolicy, ServiceContext, require_ven
from .hooks import Handlers, call_hook
from .routing import ROUTES, make_router

__all__ = [
    "ROUTES",
    "Handlers",
    "RegistrationPolicy",
    "ServiceContext",
    "call_hook",
    "events",
    "make_router",
    "opt",
    "poll",
    "registration",
    "reports",
    "require_ven",
]
