"""The application's hooks into the VTN's services, typed: :class:`Handlers` and its Protocols.

Each hook may be a plain function or a coroutine function; :func:`call_hook` awaits what a
coroutine function returns. A hook runs after the state it describes is committed, except
``on_register``, which runs first because it may refuse. Hooks take their arguments by position,
so any parameter names do.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import ParamSpec, Protocol, TypeVar, cast

from schemas import CancelOpt, CreateOpt, EventResponse, Report, ReportRequest
from vtn.storage import VenRegistration

__all__ = [
    "Handlers",
    "OnEventResponse",
    "OnOpt",
    "OnRegister",
    "OnReportData",
    "ReportSubscriptions",
    "call_hook",
]

_T = TypeVar("_T")
_P = ParamSpec("_P")

Subscriptions = Iterable[ReportRequest] | None


class OnRegister(Protocol):
    """Before a registration is stored; False refuses it (the VEN gets 463)."""

    def __call__(self, registration: VenRegistration, /) -> bool | Awaitable[bool | None] | None:
        ...


class OnEventResponse(Protocol):
    """After a VEN's optIn/optOut for one event is stored; what it returns is ignored."""

    def __call__(self, ven_id: str, response: EventResponse, /) -> object: ...


class OnReportData(Protocol):
    """After a report's data is stored; what it returns is ignored."""

    def __call__(self, ven_id: str, report: Report, /) -> object: ...


class OnOpt(Protocol):
    """After an opt schedule (created or cancelled) is stored; what it returns is ignored."""

    def __call__(self, ven_id: str, message: CreateOpt | CancelOpt, /) -> object: ...


class ReportSubscriptions(Protocol):
    """Which of a VEN's freshly registered METADATA reports to request at once (in
    oadrRegisteredReport); None uses the configured default."""

    def __call__(self, ven_id: str, reports: tuple[Report, ...], /
                 ) -> Subscriptions | Awaitable[Subscriptions]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Handlers:
    """The application's callbacks, each optional (see the Protocols for what each is given)."""

    on_register: OnRegister | None = None
    on_event_response: OnEventResponse | None = None
    on_report_data: OnReportData | None = None
    on_opt: OnOpt | None = None
    report_subscriptions: ReportSubscriptions | None = None


async def call_hook(hook: Callable[_P, _T | Awaitable[_T]] | None, *args: _P.args,
                    **kwargs: _P.kwargs) -> _T | None:
    """Call a sync or async application hook; None when there is none."""
    if hook is None:
        return None
    result = hook(*args, **kwargs)
    if inspect.isawaitable(result):
        return cast(_T, await result)
    return result
