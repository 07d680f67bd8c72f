"""Passive rules for a VEN under test: checks the harness VTN runs on every request it receives.

Each :class:`~cbp.conformance.Rule` checks one :class:`Heard` request against :class:`Said`,
what the harness told the VEN before (the venID it gave, the requestIDs of the payloads it
delivered, the optIDs it acknowledged). A finding is a :class:`~cbp.conformance.Violation`; any
violation fails the case it arrived in. Over XMPP (profile 9.3) the rules of Simple HTTP's
framing (Content-Type, one endpoint per service) find nothing, each saying why in its
requirement: an IQ has neither; VR10 is the binding's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from lxml import etree

from schemas import (
    CanceledPartyRegistration,
    CanceledReport,
    CancelOpt,
    CancelPartyRegistration,
    CancelReport,
    CreatedEvent,
    CreatedOpt,
    CreatedPartyRegistration,
    CreatedReport,
    CreateOpt,
    CreatePartyRegistration,
    CreateReport,
    DistributeEvent,
    Message,
    Poll,
    QueryRegistration,
    RegisteredReport,
    RegisterReport,
    RequestEvent,
    Response,
    Service,
    UpdateReport,
)

from ._checks import carries_schema_location
from ._model import Exchange, Rule

__all__ = ["VEN_RULES", "Heard", "Said"]

#: the service each VEN-to-VTN payload is posted to (profile 9.1.2); oadrResponse goes to the
#: service of what it answers, so it is accepted on every one
_SERVICE: Final[dict[type[Message], Service]] = {
    QueryRegistration: Service.REGISTER_PARTY,
    CreatePartyRegistration: Service.REGISTER_PARTY,
    CancelPartyRegistration: Service.REGISTER_PARTY,
    CanceledPartyRegistration: Service.REGISTER_PARTY,
    RequestEvent: Service.EVENT,
    CreatedEvent: Service.EVENT,
    RegisterReport: Service.REPORT,
    RegisteredReport: Service.REPORT,
    CreatedReport: Service.REPORT,
    UpdateReport: Service.REPORT,
    CanceledReport: Service.REPORT,
    CreateOpt: Service.OPT,
    CancelOpt: Service.OPT,
    Poll: Service.POLL,
}

#: a VEN's acknowledgement -> the payload kind whose requestID it must echo
_ANSWERS: Final[dict[type[Message], type[Message]]] = {
    CreatedEvent: DistributeEvent,
    CreatedReport: CreateReport,
    CanceledReport: CancelReport,
    CanceledPartyRegistration: CancelPartyRegistration,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Heard:
    """One request as the rules see it: the exchange (``sent`` is the VEN's decoded payload), its
    XML tree (None when not XML), the XSD's complaint, the client certificate's fingerprint and,
    in a signed run, why its signature was refused (None: it verified, or the run is unsigned);
    ``xmpp``: it came in an IQ rather than an HTTP request."""

    exchange: Exchange
    tree: etree._Element | None
    schema_error: str | None
    fingerprint: str | None
    signature_error: str | None = None
    xmpp: bool = False


@dataclass(slots=True)
class Said:
    """What the harness VTN told the VEN: the venID it gave, per payload kind the requestIDs
    of what it delivered, and the optIDs it acknowledged."""

    ven_id: str | None = None
    request_ids: dict[type[Message], set[str]] = field(default_factory=dict)
    opt_ids: set[str] = field(default_factory=set)

    def remember(self, message: Message) -> None:
        if isinstance(message, CreatedPartyRegistration) and message.ven_id:
            self.ven_id = message.ven_id
        if isinstance(message, CreatedOpt) and message.response.ok:
            self.opt_ids.add(message.opt_id)
        request_id = getattr(message, "request_id", None)
        if isinstance(request_id, str):
            self.request_ids.setdefault(type(message), set()).add(request_id)


def _xsd(heard: Heard, said: Said) -> Iterator[str]:
    if heard.schema_error is not None:
        yield f"request is not valid against oadr_20b.xsd: {heard.schema_error}"


def _no_schema_location(heard: Heard, said: Said) -> Iterator[str]:
    if carries_schema_location(heard.tree):
        yield "request carries an xsi:schemaLocation attribute"


def _content_type(heard: Heard, said: Said) -> Iterator[str]:
    if heard.xmpp:
        return
    media = heard.exchange.content_type
    if media != "application/xml":
        yield f"Content-Type is {media!r}, not 'application/xml'"


def _endpoint(heard: Heard, said: Said) -> Iterator[str]:
    exchange = heard.exchange
    if heard.xmpp or exchange.sent is None or isinstance(exchange.sent, Response):
        return
    wanted = _SERVICE.get(type(exchange.sent))
    if wanted is None:
        yield f"{exchange.sent_name} is not a payload a VEN sends to a VTN"
    elif exchange.service != wanted:
        yield f"{exchange.sent_name} was posted to {exchange.service}, not {wanted.value}"


def _ven_id(heard: Heard, said: Said) -> Iterator[str]:
    sent = heard.exchange.sent
    given = getattr(sent, "ven_id", None)
    if given and said.ven_id and given != said.ven_id:
        yield f"{heard.exchange.sent_name} names venID {given!r}, not {said.ven_id!r}"


def _no_poll_over_xmpp(heard: Heard, said: Said) -> Iterator[str]:
    if heard.xmpp and isinstance(heard.exchange.sent, Poll):
        yield "oadrPoll over XMPP, where the VTN sends without being polled"


def _signed(heard: Heard, said: Said) -> Iterator[str]:
    if heard.signature_error is not None:
        yield f"request is refused for its signature: {heard.signature_error}"


def _echo(heard: Heard, said: Said) -> Iterator[str]:
    sent = heard.exchange.sent
    answered = _ANSWERS.get(type(sent)) if sent is not None else None
    response = getattr(sent, "response", None)
    if answered is None or response is None:
        return
    delivered = said.request_ids.get(answered, set())
    echoed = [response.request_id]
    if isinstance(sent, CreatedEvent):  # each eventResponse echoes too; the eiResponse may not
        echoed = [r.request_id for r in sent.event_responses] + [response.request_id] * bool(
            response.request_id)
    for request_id in dict.fromkeys(echoed):
        if request_id not in delivered:
            yield (f"{heard.exchange.sent_name} echoes requestID {request_id!r}, which no "
                   f"payload it answers carried")


def _opt_says_what(heard: Heard, said: Said) -> Iterator[str]:
    sent = heard.exchange.sent
    if isinstance(sent, CreateOpt) and sent.vavailability is None \
            and sent.qualified_event_id is None:
        yield "oadrCreateOpt carries neither a vavailability schedule nor a qualifiedEventID"


def _cancels_known_opt(heard: Heard, said: Said) -> Iterator[str]:
    sent = heard.exchange.sent
    if isinstance(sent, CancelOpt) and sent.opt_id not in said.opt_ids:
        yield f"oadrCancelOpt names optID {sent.opt_id!r}, which the VTN never acknowledged"


VEN_RULES: Final[tuple[Rule[Heard, Said], ...]] = (
    Rule(rule_id="VR01", requirement="every request is valid against oadr_20b.xsd",
            check=_xsd),
    Rule(rule_id="VR02", requirement="no request carries an xsi:schemaLocation attribute",
            check=_no_schema_location),
    Rule(rule_id="VR03", requirement="every request has Content-Type application/xml (Simple "
            "HTTP only: an XMPP IQ has no Content-Type)", check=_content_type),
    Rule(rule_id="VR04", requirement="each payload is posted to its own service endpoint "
            "(Simple HTTP only: over XMPP every IQ goes to the VTN's one JID)",
            check=_endpoint),
    Rule(rule_id="VR05", requirement="a payload's venID is the one the VTN gave",
            check=_ven_id),
    Rule(rule_id="VR06", requirement="an acknowledgement echoes the requestID of the VTN "
            "payload it answers", check=_echo),
    Rule(rule_id="VR07", requirement="with --signed: every request is signed, and its signature "
            "verifies against --ca and is no replay", check=_signed),
    Rule(rule_id="VR08", requirement="an oadrCreateOpt carries an availability schedule or "
            "names an event", check=_opt_says_what),
    Rule(rule_id="VR09", requirement="an oadrCancelOpt names an optID the VTN acknowledged",
            check=_cancels_known_opt),
    Rule(rule_id="VR10", requirement="over XMPP: no oadrPoll, the VTN sends without being "
            "polled (profile 9.3)", check=_no_poll_over_xmpp),
)
