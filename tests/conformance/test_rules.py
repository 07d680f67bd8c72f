"""Each passive rule finds what it names, and a well-formed conversation breaks none of them.

The rules read one reply (as :class:`cbp.conformance.rules.Seen`) and the :class:`Memory` of what
the node said before; these tests build both by hand, with no I/O.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from cbp.conformance import RULES, Exchange
from cbp.conformance.rules import Memory, Seen
from schemas import (
    CreatedOpt,
    CreatedPartyRegistration,
    CreateOpt,
    DistributeEvent,
    EiResponse,
    Event,
    EventInterval,
    EventStatus,
    ItemBase,
    ItemKind,
    Message,
    OptReason,
    OptType,
    Profile,
    ProfileName,
    RegisterReport,
    Report,
    Response,
    SignalType,
    Target,
    TransportName,
    encode,
)

from ..vtn.harness import sample_event

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
PROFILES = (Profile(profile_name=ProfileName.OADR_20B, transports=(TransportName.SIMPLE_HTTP,)),)


def memory() -> Memory:
    remembered = Memory(lambda: NOW)
    remembered.ven_id, remembered.vtn_id = "ven-1", "VTN-1"
    return remembered


def broken(received: Message, known: Memory | None = None, *, sent: Message | None = None,
           content_type: str = "application/xml", tree: etree._Element | None = None,
           schema_error: str | None = None) -> set[str]:
    """The IDs of the rules ``received`` breaks (and teach ``known`` from it, as the harness
    does after checking)."""
    known = known or memory()
    exchange = Exchange(service="OadrPoll", request=b"", sent=sent, status=200,
                        content_type=content_type, reply=b"<x/>", received=received)
    seen = Seen(exchange=exchange, tree=tree, schema_error=schema_error)
    found = {rule.rule_id for rule in RULES for _ in rule.check(seen, known)}
    known.learn(received)
    return found


def event(event_id: str = "ev-1", **changes: object) -> Event:
    made = sample_event(event_id, Target(ven_ids=("ven-1",)), start=NOW + timedelta(hours=1))
    return replace(made, **changes)  # type: ignore[arg-type]


def distribution(*events: Event) -> DistributeEvent:
    return DistributeEvent(request_id="d1", vtn_id="VTN-1", events=events,
                           response=EiResponse(request_id=""))


def signal_of(name: str, kind: SignalType, values: tuple[float, ...] = (1.0,),
              uids: tuple[str, ...] | None = None, unit: ItemBase | None = None) -> Event:
    base = event()
    intervals = tuple(EventInterval(values=(v,), duration=timedelta(minutes=30), uid=uid)
                      for v, uid in zip(values, uids or [str(n) for n in range(len(values))],
                                        strict=True))
    signal = replace(base.signals[0], signal_name=name, signal_type=kind, intervals=intervals,
                     item_base=unit)
    return replace(base, signals=(signal,))


def test_a_well_formed_conversation_breaks_no_rule():
    known = memory()
    created = CreatedPartyRegistration(
        response=EiResponse(request_id="r1"), registration_id="reg-1", ven_id="ven-1",
        vtn_id="VTN-1", profiles=PROFILES, requested_oadr_poll_freq=timedelta(seconds=10))
    assert broken(created, known) == set()
    assert broken(distribution(event("a"), event("b")), known) == set()
    cancelled = event("a", descriptor=replace(event("a").descriptor, modification_number=1,
                                              event_status=EventStatus.CANCELLED))
    assert broken(distribution(cancelled, event("b")), known) == set()
    assert broken(distribution(event("b")), known) == set()  # a cancelled event may go
    assert broken(Response(response=EiResponse(), ven_id="ven-1"), known) == set()


def test_PR01_PR02_PR03_read_the_wire_form():
    reply = Response(response=EiResponse(), ven_id="ven-1")
    assert broken(reply, schema_error="Element 'x': not expected") == {"PR01"}
    tree = etree.fromstring(encode(reply))
    tree.set("{http://www.w3.org/2001/XMLSchema-instance}schemaLocation", "urn:x oadr.xsd")
    assert broken(reply, tree=tree) == {"PR02"}
    assert broken(reply, content_type="text/html") == {"PR03"}


def test_PR04_a_reply_must_echo_the_request_id():
    sent = CreateOpt(opt_id="o1", opt_type=OptType.OPT_OUT, opt_reason=OptReason.ECONOMIC,
                     ven_id="ven-1", created_date_time=NOW, request_id="req-7")
    assert broken(CreatedOpt(response=EiResponse(request_id="req-7"), opt_id="o1"),
                  sent=sent) == set()
    assert broken(CreatedOpt(response=EiResponse(request_id="other"), opt_id="o1"),
                  sent=sent) == {"PR04"}


def test_PR05_PR06_ids_belong_to_this_conversation():
    assert broken(Response(response=EiResponse(), ven_id="ven-2")) == {"PR05"}
    assert broken(replace(distribution(event()), vtn_id="VTN-2")) == {"PR06"}


def test_PR07_an_event_not_over_must_stay_in_the_list():
    known = memory()
    broken(distribution(event("a"), event("b")), known)
    assert broken(distribution(event("b")), known) == {"PR07"}


def test_PR07_an_event_whose_period_ended_may_go():
    known = memory()
    past = event("a", active_period=replace(event("a").active_period,
                                            dtstart=NOW - timedelta(hours=2)))
    broken(distribution(past), known)
    assert broken(distribution(), known) == set()


@pytest.mark.parametrize(("made", "rule"), [
    (signal_of("LOAD_DISPATCH", SignalType.PRICE), "PR08"),
    (signal_of("SIMPLE", SignalType.SETPOINT, (1.0,)), "PR08"),
    (signal_of("LOAD_DISPATCH", SignalType.SETPOINT,
               unit=ItemBase.of(ItemKind.CURRENCY, units="EUR")), "PR09"),
    (signal_of("SIMPLE", SignalType.LEVEL, unit=ItemBase.of(ItemKind.POWER_REAL)), "PR09"),
    (signal_of("LOAD_DISPATCH", SignalType.SETPOINT, (1.0, 2.0), uids=("1", "2")), "PR10"),
    (signal_of("SIMPLE", SignalType.LEVEL, (1.0, 5.0)), "PR11"),
])
def test_signal_rules(made, rule):
    assert broken(distribution(made)) == {rule}


def test_fitting_signals_pass():
    fine = (signal_of("SIMPLE", SignalType.LEVEL, (0.0, 3.0)),
            signal_of("LOAD_DISPATCH", SignalType.DELTA, unit=ItemBase.of(ItemKind.POWER_REAL)),
            signal_of("x-CUSTOM", SignalType.PRICE))
    assert broken(distribution(*(replace(e, descriptor=replace(e.descriptor, event_id=f"e{n}"))
                                 for n, e in enumerate(fine)))) == set()


def test_PR12_modification_number_never_falls():
    known = memory()
    second = replace(event().descriptor, modification_number=2)
    broken(distribution(event(descriptor=second)), known)
    first = replace(event().descriptor, modification_number=1)
    assert broken(distribution(event(descriptor=first)), known) == {"PR12"}


def test_PR13_register_report_carries_report_request_id_0():
    report = Report(report_request_id="7", report_specifier_id="vtn-spec", created_date_time=NOW)
    assert broken(RegisterReport(request_id="r", reports=(report,))) == {"PR13"}
    assert broken(RegisterReport(request_id="r", reports=(
        replace(report, report_request_id="0"),))) == set()


def test_PR14_success_is_200():
    assert broken(Response(response=EiResponse(code=201), ven_id="ven-1")) == {"PR14"}


def test_PR15_a_pull_registration_names_its_poll_frequency():
    created = CreatedPartyRegistration(
        response=EiResponse(request_id="r1"), registration_id="reg-1", ven_id="ven-1",
        vtn_id="VTN-1", profiles=PROFILES)
    assert broken(created) == {"PR15"}


def test_PR16_an_iq_result_carries_the_answer():
    rule = next(r for r in RULES if r.rule_id == "PR16")
    empty = Exchange(service="EiEvent", request=b"<x/>", sent=None, status=200,
                     transport=TransportName.XMPP)
    assert list(rule.check(Seen(exchange=empty, tree=None, schema_error=None), memory())) == [
        "the IQ result answering (raw body) carries no oadrPayload"]
    answered = replace(empty, reply=b"<x/>")
    assert list(rule.check(Seen(exchange=answered, tree=None, schema_error=None), memory())) == []


def test_a_rule_about_one_transport_is_skipped_over_the_other():
    over = {transport: {r.rule_id for r in RULES if not r.applies(transport)}
            for transport in TransportName}
    assert over == {TransportName.SIMPLE_HTTP: {"PR16"}, TransportName.XMPP: {"PR03", "PR15"}}
