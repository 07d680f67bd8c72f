"""The values of a live conformance run: cases, exchanges, rule violations, verdicts.

A :class:`Case` is one test the harness runs against a node under test: an ID in the OpenADR
Alliance numbering scheme, a one-line purpose, the requirement it checks, the messages it expects
to exchange and the coroutine that runs it. Every HTTP exchange of a case is kept as an
:class:`Exchange`, with the passive rules' :class:`Violation` s; a :class:`CaseResult` holds the
verdict and its reason.

Its errors, :class:`ConformanceError` and below, are drawn in the :mod:`cbp` package docstring.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Final, Generic, Never, TypeVar

from cbp.errors import CbpError
from schemas import Message, TransportName

if TYPE_CHECKING:
    from .operators import Step

__all__ = [
    "MARKET_CONTEXT",
    "MAX_BODY_BYTES",
    "PUSH_BASE",
    "AnyCase",
    "AnyRule",
    "Case",
    "CaseFailed",
    "CaseResult",
    "ConformanceError",
    "Exchange",
    "OperatorError",
    "Rule",
    "Verdict",
    "Violation",
    "pushed",
]


class ConformanceError(CbpError):
    """Root of the live conformance suite's errors."""


class CaseFailed(ConformanceError):
    """A case's check failed; ``str(error)`` is the reason shown with the verdict."""


class OperatorError(ConformanceError):
    """An operator step could not be carried out (the VTN refused it, the hook failed, timeout)."""


S = TypeVar("S", contravariant=True)
K = TypeVar("K", contravariant=True)
#: the harness a case plays: a :class:`~cbp.conformance.session.HarnessVen` for a VTN under test,
#: a :class:`~cbp.conformance.harness_vtn.HarnessVtn` for a VEN under test
H = TypeVar("H", contravariant=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule(Generic[S, K]):
    """A passive rule: its ID, the requirement it checks, and a check of one message as seen
    (``S``) against what the run remembers (``K``), yielding what it found wrong; a rule about
    one transport's framing (``transport``) is skipped over the others."""

    rule_id: str
    requirement: str
    check: Callable[[S, K], Iterator[str]]
    transport: TransportName | None = None  # the only transport it applies to; None: every one

    def applies(self, transport: TransportName) -> bool:
        return self.transport in (None, transport)


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"


@dataclass(frozen=True, slots=True, kw_only=True)
class Violation:
    """A passive rule found something wrong in one exchange."""

    rule_id: str
    detail: str

    def __str__(self) -> str:
        return f"{self.rule_id}: {self.detail}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Exchange:
    """One HTTP request and its reply: the harness's request when it plays the VEN, the VEN
    under test's when the harness plays the VTN.

    ``sent`` is the typed payload when the body was one (None for deliberately broken bodies);
    ``status`` None means no HTTP answer at all (``error`` says why: refused handshake, timeout);
    ``received`` is the decoded reply, None when there was none or it did not decode (``error``).
    Over XMPP (:mod:`~cbp.conformance.harness_xmpp`) an IQ result is ``status`` 200 and its
    ``oadrPayload`` the reply; an XMPP error stanza leaves ``status`` None and is the
    ``refusal`` (e.g. ``XMPP error not-acceptable``).
    """

    service: str
    request: bytes
    sent: Message | None
    status: int | None
    content_type: str | None = None
    reply: bytes = b""
    received: Message | None = None
    error: str | None = None
    refusal: str | None = None
    violations: tuple[Violation, ...] = ()
    transport: TransportName = TransportName.SIMPLE_HTTP

    @property
    def status_text(self) -> str:
        """The transport's word on the exchange: ``HTTP 200``, ``IQ result``, ``no reply``."""
        if self.refusal is not None:
            return self.refusal
        if self.status is None:
            return "no reply"
        return "IQ result" if self.transport is TransportName.XMPP else f"HTTP {self.status}"

    @property
    def sent_name(self) -> str:
        return _payload_name(self.sent) if self.sent is not None else "(raw body)"

    @property
    def received_name(self) -> str:
        if self.received is not None:
            return _payload_name(self.received)
        if self.status is None or self.transport is TransportName.XMPP:
            return f"({self.status_text})"
        return f"(HTTP {self.status})"


def _payload_name(message: Message) -> str:
    name = type(message).__name__
    return "oadrResponse" if name == "Response" else f"oadr{name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Case(Generic[H]):
    """One conformance case. ``run`` returns the reason of a pass or raises :class:`CaseFailed`.

    ``messages`` lists the payloads the case exchanges, in order (``>`` harness to node under
    test, ``<`` the other way), for the case list and the report.
    """

    case_id: str
    purpose: str
    requirement: str
    messages: tuple[str, ...]
    run: Callable[[H], Awaitable[str]]  # given the harness it plays

    @property
    def service(self) -> str:
        """The Alliance service letter: N registration, E events, R reports, P opt, G general."""
        return self.case_id[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseResult:
    case: AnyCase
    verdict: Verdict
    reason: str
    exchanges: tuple[Exchange, ...] = ()
    steps: tuple[Step, ...] = ()

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS


#: the market context of every event and opt the harnesses make, on either side
MARKET_CONTEXT: Final = "http://conformance.crowdflex.example/market"

#: the most the harnesses read of one body from the node under test (a reply, a push's answer,
#: a request): a hostile node streaming without end is cut there, not read until the timeout
MAX_BODY_BYTES: Final = 1024 * 1024

#: the Alliance's first number of a push case per service letter: pull N1_0010 is push N0_5010
PUSH_BASE: Final = {"N": 5000, "E": 6000, "R": 8000, "P": 7000, "G": 9000}


#: a case of either suite, to describe: whatever harness it plays (no harness is a Never, so no
#: AnyCase can be run)
AnyCase = Case[Never]
#: a passive rule of either suite, to describe (likewise never checked through this type)
AnyRule = Rule[Never, Never]


def pushed(case: Case[H]) -> Case[H]:
    """The push-mode twin of a pull-mode case: the same checks under the push case's ID."""
    letter, number, side = case.case_id[0], int(case.case_id[3:7]), case.case_id[7:]
    return replace(case, case_id=f"{letter}0_{PUSH_BASE[letter] + number % 1000}{side}")
