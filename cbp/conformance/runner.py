"""Running the live suites: the case catalogues, selection by ID, and one verdict per case.

VTN cases run in catalogue order with one :class:`~cbp.conformance.session.HarnessVen`, VEN cases
with one :class:`~cbp.conformance.harness_vtn.HarnessVtn` and the VEN under test started once; a
case passes when its own checks pass and no passive rule found a violation in any of its
exchanges. A case that fails does not stop the run: the tester gets every verdict.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from typing import Final, Protocol, TypeVar, overload

from schemas import CrowdflexError

from ._model import AnyCase, Case, CaseFailed, CaseResult, Exchange, Verdict, pushed
from .cases_events import EVENT_CASES
from .cases_opt_general import GENERAL_CASES, OPT_CASES
from .cases_registration import PUSH_EXCLUDED, REGISTRATION_CASES
from .cases_reports import REPORT_CASES
from .cases_signatures import SIGNATURE_CASES
from .cases_ven import ENDS_REGISTRATION, NER_CASES, PULL_ONLY
from .cases_ven_opt import VEN_OPT_CASES
from .cases_ven_signatures import VEN_SIGNATURE_CASES
from .harness_vtn import HarnessVtn, VenHarnessSettings
from .operators import Operator, Step
from .session import HarnessSettings, HarnessVen
from .ven_starters import VenUnderTest

__all__ = [
    "VEN_CASES",
    "VEN_PUSH_CASES",
    "VTN_CASES",
    "VTN_PUSH_CASES",
    "run_cases",
    "run_ven_cases",
    "select",
    "ven_catalogue",
    "vtn_catalogue",
]

_C = TypeVar("_C", bound=AnyCase)

#: every case of ``crowdflex conformance vtn`` (pull mode, Simple HTTP), in running order
VTN_CASES: Final[tuple[Case[HarnessVen], ...]] = (
    *REGISTRATION_CASES, *EVENT_CASES, *REPORT_CASES, *OPT_CASES, *GENERAL_CASES)

#: the same checks against a VTN pushing to the harness VEN (``--push``), as push case IDs
VTN_PUSH_CASES: Final[tuple[Case[HarnessVen], ...]] = tuple(
    pushed(case) for case in VTN_CASES if case.run not in PUSH_EXCLUDED)


_S = TypeVar("_S")


def _inserted(base: tuple[Case[_S], ...], more: Iterable[Case[_S]],
              last: Collection[Callable[[_S], Awaitable[str]]]) -> tuple[Case[_S], ...]:
    """``base`` with ``more`` after it, but before the cases whose run is in ``last``."""
    cut = next((i for i, case in enumerate(base) if case.run in last), len(base))
    return (*base[:cut], *more, *base[cut:])


#: every case of ``crowdflex conformance ven`` (pull mode), in running order: the opt cases come
#: before those that end the VEN's registration
VEN_CASES: Final[tuple[Case[HarnessVtn], ...]] = _inserted(NER_CASES, VEN_OPT_CASES,
                                                           ENDS_REGISTRATION)

#: the same checks against a push VEN (``--push``), as push case IDs
VEN_PUSH_CASES: Final[tuple[Case[HarnessVtn], ...]] = tuple(
    pushed(case) for case in VEN_CASES if case.run not in PULL_ONLY)


def _catalogue(base: tuple[Case[_S], ...], signature_cases: tuple[Case[_S], ...], *,
               push: bool, signed: bool,
               last: Collection[Callable[[_S], Awaitable[str]]] = ()) -> tuple[Case[_S], ...]:
    """``base`` (the mode's catalogue), and with ``signed`` the signature cases (as push cases
    with ``push``) after it, but before the cases whose run is in ``last``."""
    if not signed:
        return base
    return _inserted(base, (pushed(c) if push else c for c in signature_cases), last)


def vtn_catalogue(*, push: bool = False, signed: bool = False) -> tuple[Case[HarnessVen], ...]:
    """The VTN cases of a mode: pull or push, and with ``signed`` the signature cases after
    them (every payload of every case is then signed)."""
    return _catalogue(VTN_PUSH_CASES if push else VTN_CASES, SIGNATURE_CASES, push=push,
                      signed=signed)


def ven_catalogue(*, push: bool = False, signed: bool = False) -> tuple[Case[HarnessVtn], ...]:
    """The VEN cases of a mode, likewise, with the signature cases before those that end the
    VEN's registration."""
    return _catalogue(VEN_PUSH_CASES if push else VEN_CASES, VEN_SIGNATURE_CASES, push=push,
                      signed=signed, last=ENDS_REGISTRATION)


@overload
def select(only: Sequence[str]) -> tuple[Case[HarnessVen], ...]: ...
@overload
def select(only: Sequence[str], cases: Sequence[_C]) -> tuple[_C, ...]: ...


def select(only: Sequence[str], cases: Sequence[AnyCase] = VTN_CASES) -> tuple[AnyCase, ...]:
    """The cases whose ID starts with one of ``only`` (all when empty), in catalogue order;
    ``ValueError`` names any ID that matches nothing."""
    if not only:
        return tuple(cases)
    unknown = [wanted for wanted in only if not any(c.case_id.startswith(wanted) for c in cases)]
    if unknown:
        raise ValueError(f"no case with ID {', '.join(unknown)} (see --list)")
    return tuple(c for c in cases if any(c.case_id.startswith(wanted) for wanted in only))


async def run_cases(settings: HarnessSettings, operator: Operator,
                    cases: Sequence[Case[HarnessVen]] | None = None, *,
                    on_result: Callable[[CaseResult], None] | None = None
                    ) -> tuple[CaseResult, ...]:
    """Run ``cases`` (default: the catalogue of the settings' mode, pull or push) with one
    harness VEN against the VTN under test."""
    if cases is None:
        cases = vtn_catalogue(push=settings.push, signed=settings.signed)
    results = []
    async with HarnessVen(settings, operator) as ven:
        for case in cases:
            result = await _run_one(ven, case)
            results.append(result)
            if on_result is not None:
                on_result(result)
    return tuple(results)


async def run_ven_cases(settings: VenHarnessSettings, ven: VenUnderTest,
                        cases: Sequence[Case[HarnessVtn]] | None = None, *,
                        operator: Operator,
                        on_result: Callable[[CaseResult], None] | None = None
                        ) -> tuple[CaseResult, ...]:
    """Serve the harness VTN, start the VEN under test against it, run ``cases`` (default: the
    catalogue of the settings' mode: pull or push, signed or not), stop it. ``operator`` makes
    the VEN act on its own (send and cancel opts)."""
    if cases is None:
        cases = ven_catalogue(push=settings.push, signed=settings.signed)
    results = []
    async with HarnessVtn(settings, operator) as vtn:
        await ven.start(vtn.address)
        try:
            for case in cases:
                result = await _run_one(vtn, case)
                results.append(result)
                if on_result is not None:
                    on_result(result)
        finally:
            await ven.stop()
    return tuple(results)


class _Harness(Protocol):
    """What :func:`_run_one` needs of either harness."""

    exchanges: list[Exchange]
    steps: list[Step]

    def begin_case(self) -> None: ...


_H = TypeVar("_H", bound=_Harness)


async def _run_one(harness: _H, case: Case[_H]) -> CaseResult:
    harness.begin_case()
    verdict = Verdict.PASS
    try:
        reason = await case.run(harness)
    except CaseFailed as exc:
        verdict, reason = Verdict.FAIL, str(exc)
    except CrowdflexError as exc:  # e.g. the VTN sent values our own types refuse to rebuild
        verdict, reason = Verdict.FAIL, f"harness stopped: {type(exc).__name__}: {exc}"
    violations = [v for exchange in harness.exchanges for v in exchange.violations]
    if violations:
        broken = "; ".join(dict.fromkeys(str(v) for v in violations))
        reason = f"rule {broken}" if verdict is Verdict.PASS else f"{reason}; rule {broken}"
        verdict = Verdict.FAIL
    return CaseResult(case=case, verdict=verdict, reason=reason,
                      exchanges=tuple(harness.exchanges), steps=tuple(harness.steps))
