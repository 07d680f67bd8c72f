"""The admin JSON API against a running VTN: bearer token, VENs, events with per-VEN acks,
report subscriptions and data, opts, re-registration."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from schemas import (
    CanceledPartyRegistration,
    CancelPartyRegistration,
    CreatedEvent,
    CreatedReport,
    CreateReport,
    DistributeEvent,
    EiResponse,
    EventResponse,
    Message,
    OptType,
    RegisteredReport,
    Report,
    ReportInterval,
    ReportName,
    ReportPayload,
    RequestReregistration,
    ResponseRequired,
    SignalType,
    UpdatedReport,
    UpdateReport,
)
from tests.kit.admin import admin_client, offer
from tests.kit.clock import Clock
from tests.kit.vtn import running_vtn, served_vtn, vtn_config
from vtn.admin import create_admin_app

from .harness import code_of, raw_ven


def test_short_token_is_refused():
    with pytest.raises(ValueError):
        create_admin_app(lambda: None, token="short")  # type: ignore[arg-type,return-value]


async def test_wrong_token_is_401(pki, tmp_path):
    async with running_vtn(pki, f"sqlite+aiosqlite:///{tmp_path / 'v.db'}") as vtn, \
            admin_client(vtn.app, token="not-the-token-at-all") as (http, base):
        async with http.get(f"{base}/vens") as reply:
            assert reply.status == 401
        async with http.get(f"{base}/vens", headers={"Authorization": ""}) as reply:
            assert reply.status == 401


async def test_admin_drives_events_reports_and_registration(pki, storage_url):
    async with running_vtn(pki, storage_url) as vtn, admin_client(vtn.app) as (http, base), \
            raw_ven(vtn.url, pki.client_context()) as ven:
        await ven.register("admin-ven")
        await ven.drain()
        async with http.get(f"{base}/vens") as reply:
            (listed,) = (await reply.json())["vens"]
        assert listed["ven_id"] == ven.ven_id and listed["ven_name"] == "admin-ven"

        async with http.put(f"{base}/vens/{ven.ven_id}/memberships",
                            json={"groups": ["pool-7"]}) as reply:
            assert reply.status == 200
        start = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
        event = {"event_id": "adm-1", "market_context": "http://cbp.example/mc", "start": start,
                 "targets": {"group_ids": ["pool-7"]},
                 "signals": [{"name": "LOAD_DISPATCH", "type": "setpoint",
                              "intervals": [{"duration_s": 900, "value": 3.0}]}]}
        async with http.post(f"{base}/events", json=event) as reply:
            assert reply.status == 201
            assert (await reply.json())["targeted"] == [ven.ven_id]
        async with http.post(f"{base}/events", json=event) as reply:
            assert reply.status == 409
        async with http.post(f"{base}/events", json={**event, "event_id": "x",
                                                     "start": "2030-01-01T00:00:00"}) as reply:
            assert reply.status == 400  # naive time

        (sent,) = await ven.drain()
        assert isinstance(sent, DistributeEvent)
        assert sent.events[0].signals[0].intervals[0].value == 3.0
        ack = CreatedEvent(response=EiResponse(), ven_id=ven.ven_id, event_responses=(
            EventResponse(request_id=sent.request_id, event_id="adm-1", modification_number=0,
                          opt_type=OptType.OPT_OUT),))
        assert code_of(await ven.post("EiEvent", ack)) == 200
        async with http.get(f"{base}/events/adm-1") as reply:
            (delivery,) = (await reply.json())["deliveries"]
        assert delivery["opt_type"] == "optOut" and delivery["ack_modification_number"] == 0

        async with http.put(f"{base}/events/adm-1", json=event) as reply:
            assert (await reply.json())["modification_number"] == 1
        async with http.post(f"{base}/events/adm-1/cancel") as reply:
            body = await reply.json()
        assert body["status"] == "cancelled" and body["modification_number"] == 2
        async with http.post(f"{base}/events/nope/cancel") as reply:
            assert reply.status == 404

        registered = await ven.post("EiReport", offer("spec-9", "a", "b"))
        assert isinstance(registered, RegisteredReport)
        async with http.post(f"{base}/vens/{ven.ven_id}/reports/subscriptions",
                             json={"report_specifier_id": "spec-9", "r_ids": ["a", "b"],
                                   "granularity_s": 60}) as reply:
            assert reply.status == 201
            rrid = (await reply.json())["report_request_id"]
        async with http.post(f"{base}/vens/{ven.ven_id}/reregister") as reply:
            assert reply.status == 202
        queued = await ven.drain()
        kinds = [type(m) for m in queued]
        assert kinds.count(CreateReport) == 1 and kinds[-1] is RequestReregistration
        async with http.get(f"{base}/vens/{ven.ven_id}/reports") as reply:
            (sub,) = (await reply.json())["subscriptions"]
        assert sub["report_request_id"] == rrid and sub["status"] == "pending"
        async with http.delete(f"{base}/vens/{ven.ven_id}/reports/subscriptions/{rrid}") as r:
            assert r.status == 200
        async with http.get(f"{base}/vens/{ven.ven_id}/reports") as reply:
            (sub,) = (await reply.json())["subscriptions"]
        assert sub["status"] == "cancelled"
        async with http.get(f"{base}/vens/{ven.ven_id}/reports/data") as reply:
            assert (await reply.json())["points"] == []
        async with http.get(f"{base}/vens/{ven.ven_id}/opts") as reply:
            assert (await reply.json())["opts"] == []
        async with http.get(f"{base}/vens/unknown/opts") as reply:
            assert reply.status == 404


async def test_report_data_defaults_to_the_last_hour_and_filters_by_rid(pki, tmp_path):
    """README: "Without start/end the data endpoint returns the last hour"; r_id filters."""
    now = datetime.now(UTC).replace(microsecond=0)
    readings = ((now - timedelta(minutes=90), "power", 1.0), (now - timedelta(minutes=30),
                "power", 2.0), (now - timedelta(minutes=20), "energy", 3.0))  # fmt: skip
    report = Report(report_request_id="rr-1", report_specifier_id="spec-1",
                    created_date_time=now, report_name=ReportName.TELEMETRY_USAGE,
                    intervals=tuple(ReportInterval(dtstart=at, duration=timedelta(seconds=4),
                                                   payloads=(ReportPayload(r_id=r, value=v),))
                                    for at, r, v in readings))
    async with running_vtn(pki, f"sqlite+aiosqlite:///{tmp_path / 'v.db'}") as vtn, \
            admin_client(vtn.app) as (http, base), \
            raw_ven(vtn.url, pki.client_context()) as ven:
        await ven.register("data-ven")
        stored = await ven.post("EiReport", UpdateReport(request_id="u1", reports=(report,),
                                                        ven_id=ven.ven_id))
        assert isinstance(stored, UpdatedReport) and stored.response.code == 200

        async def values(query: str = "") -> list[float]:
            async with http.get(f"{base}/vens/{ven.ven_id}/reports/data{query}") as reply:
                assert reply.status == 200, await reply.text()
                return sorted(p["value"] for p in (await reply.json())["points"])

        assert await values() == [2.0, 3.0]
        window = "?start=" + (now - timedelta(hours=2)).isoformat().replace("+", "%2B")
        assert await values(window) == [1.0, 2.0, 3.0]
        assert await values(window + "&r_id=power") == [1.0, 2.0]


async def test_a_cancelled_event_is_final(pki, storage_url):
    """The VEN was told the event is cancelled: a PUT of it is a 409 naming the event and its
    state, and a second cancel a 200 saying so, with no new modificationNumber and nothing sent."""
    async with running_vtn(pki, storage_url) as vtn, admin_client(vtn.app) as (http, base), \
            raw_ven(vtn.url, pki.client_context()) as ven:
        await ven.register("final-ven")
        await ven.drain()
        body = _event_body("fin-1", targets={"ven_ids": [ven.ven_id]})
        async with http.post(f"{base}/events", json=body) as reply:
            assert reply.status == 201
        await ven.drain()
        async with http.post(f"{base}/events/fin-1/cancel") as reply:
            first = await reply.json()
        assert first["status"] == "cancelled" and first["modification_number"] == 1
        assert first["already_cancelled"] is False
        (told,) = await ven.drain()
        assert isinstance(told, DistributeEvent)
        assert told.events[0].descriptor.event_status.value == "cancelled"

        async with http.put(f"{base}/events/fin-1", json=body) as reply:
            assert reply.status == 409
            reason = await reply.text()
        assert "'fin-1'" in reason and "cancelled" in reason
        async with http.post(f"{base}/events/fin-1/cancel") as reply:
            assert reply.status == 200
            again = await reply.json()
        assert again["already_cancelled"] is True
        assert again["status"] == "cancelled" and again["modification_number"] == 1
        assert await ven.drain() == []
        async with http.get(f"{base}/events/fin-1") as reply:
            stored = await reply.json()
        assert stored["status"] == "cancelled" and stored["modification_number"] == 1


@pytest.mark.parametrize("change", ["PUT", "cancel"])
async def test_a_completed_event_can_be_neither_modified_nor_cancelled(pki, storage_url, change):
    """Once the injected clock reaches the end of its active period the event is over: a PUT or
    a cancel of it is a 409 naming it and when it completed, with no new modificationNumber and
    nothing sent; a microsecond before, the same change to its twin goes out."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)
    clock = Clock(start - timedelta(minutes=10))
    config = vtn_config(pki, storage_url)
    async with served_vtn(config, clock=clock) as vtn, admin_client(vtn.app) as (http, base), \
            raw_ven(vtn.url, pki.client_context()) as ven:
        await ven.register("completed-ven")
        await ven.drain()

        def body(event_id: str) -> dict[str, object]:
            return _event_body(event_id, start=start.isoformat(),
                               targets={"ven_ids": [ven.ven_id]})  # one 900-s interval

        async def apply(event_id: str) -> tuple[int, str]:
            request = (http.put(f"{base}/events/{event_id}", json=body(event_id))
                       if change == "PUT" else http.post(f"{base}/events/{event_id}/cancel"))
            async with request as reply:
                return reply.status, await reply.text()

        for event_id in ("twin", "done"):
            async with http.post(f"{base}/events", json=body(event_id)) as reply:
                assert reply.status == 201
        await ven.drain()
        end = start + timedelta(seconds=900)

        clock.now = end - timedelta(microseconds=1)
        status, text = await apply("twin")
        assert status == 200 and json.loads(text)["modification_number"] == 1, text
        (told,) = await ven.drain()
        assert isinstance(told, DistributeEvent)

        clock.now = end
        status, reason = await apply("done")
        assert status == 409
        assert "'done'" in reason and f"completed at {end.isoformat()}" in reason
        assert await ven.drain() == []
        async with http.get(f"{base}/events/done") as reply:
            stored = await reply.json()
        assert stored["status"] != "cancelled" and stored["modification_number"] == 0


def _event_body(event_id: str = "ev-1", **changes: object) -> dict[str, object]:
    start = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    body: dict[str, object] = {
        "event_id": event_id, "market_context": "http://cbp.example/mc", "start": start,
        "targets": {"group_ids": ["pool-1"]},
        "signals": [{"name": "LOAD_DISPATCH", "type": "setpoint",
                     "intervals": [{"duration_s": 900, "value": 3.0}]}]}
    body.update(changes)
    return body


def _interval(**changes: object) -> dict[str, object]:
    return _event_body(signals=[{"name": "LOAD_DISPATCH", "intervals": [
        {"duration_s": 900, "value": 3.0, **changes}]}])


_DEEP = b'{"event_id": "deep", "targets": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
_FAR = "9999-12-31T00:00:00+00:00"

# (what, method, path, body: JSON-able or raw bytes, words the 400's reason must contain)
HOSTILE: tuple[tuple[str, str, str, object, str], ...] = (
    # completed at once, it would reach no VEN: a 201 naming the VENs "targeted" misled
    ("POST of an event that already ended", "POST", "/events",
     _event_body("over", start=(datetime.now(UTC) - timedelta(hours=1)).isoformat()),
     "ended at"),
    # its VENs would drop it from their lists: a cancel that does not say so
    ("PUT moving a live event into the past", "PUT", "/events/live",
     _event_body("live", start=(datetime.now(UTC) - timedelta(hours=1)).isoformat()),
     "ended at"),
    ("PUT with only signals (#12)", "PUT", "/events/live",
     {"signals": _event_body()["signals"]}, "start is required"),
    ("POST without signals (#12)", "POST", "/events",
     {k: v for k, v in _event_body().items() if k != "signals"}, "signals is required"),
    ("no signal at all (#12)", "POST", "/events", _event_body(signals=[]),
     "at least one signal"),
    ("duration_s 1e15", "POST", "/events", _event_body(duration_s=1e15), "duration_s"),
    ("duration_s 1e308", "POST", "/events", _event_body(duration_s=1e308), "duration_s"),
    ("interval duration 1e308", "POST", "/events", _interval(duration_s=1e308),
     "signals[0].intervals[0].duration_s"),
    ("year-9999 start plus duration", "POST", "/events", _event_body(start=_FAR), "start"),
    ("value 10**400", "POST", "/events", _interval(value=10**400),
     "signals[0].intervals[0].value"),
    ("value NaN", "POST", "/events",
     json.dumps(_event_body()).replace("3.0", "NaN").encode(), "NaN"),
    ("value as a string", "POST", "/events", _interval(value="3"), "must be a number"),
    # a bool is an int to Python: float(True) would store and send 1.0
    ("value true", "POST", "/events", _interval(value=True),
     "signals[0].intervals[0].value must be a number, not True"),
    ("duration_s true", "POST", "/events", _event_body(duration_s=True), "duration_s"),
    ("interval duration false", "POST", "/events", _interval(duration_s=False),
     "signals[0].intervals[0].duration_s"),
    ("priority true", "POST", "/events", _event_body(priority=True), "priority"),
    ("granularity_s true", "POST", "/vens/{ven}/reports/subscriptions",
     {"report_specifier_id": "spec-9", "r_ids": ["a"], "granularity_s": True}, "granularity_s"),
    ("targets as a string", "POST", "/events", _event_body(targets="pool-1"),
     "targets must be a JSON object"),
    ("group_ids as a string", "POST", "/events", _event_body(targets={"group_ids": "pool-1"}),
     "targets.group_ids must be a JSON array"),
    ("100k-deep JSON", "POST", "/events", _DEEP, "nested too deeply"),
    ("negative duration_s", "POST", "/events", _event_body(duration_s=-900), "duration_s"),
    ("negative interval duration", "POST", "/events", _interval(duration_s=-900),
     "duration_s"),
    ("zero interval duration", "POST", "/events", _interval(duration_s=0), "duration_s"),
    ("duration_s 1e-7, under a microsecond", "POST", "/events", _event_body(duration_s=1e-7),
     "duration_s"),
    ("interval duration 1e-7", "POST", "/events", _interval(duration_s=1e-7), "duration_s"),
    ("a 5,000-digit number", "POST", "/events",
     json.dumps(_event_body()).replace("3.0", "9" * 5000).encode(), "not JSON"),
    ("duration_s 1e400 (inf when read)", "POST", "/events",
     json.dumps(_event_body(duration_s=900)).replace(": 900,", ": 1e400,").encode(),
     "duration_s"),
    ("duplicate keys, the last negative", "POST", "/events",
     json.dumps(_event_body(duration_s=900)).replace('"duration_s": 900',
                                                      '"duration_s": 900, "duration_s": -1'
                                                      ).encode(), "duration_s"),
    ("10 kB event ID", "POST", "/events", _event_body("e" * 10_000), "event_id"),
    ("10 kB group ID", "POST", "/events", _event_body(targets={"group_ids": ["g" * 10_000]}),
     "targets.group_ids[0]"),
    ("control characters in an ID", "POST", "/events", _event_body("a\x00b"), "printable"),
    ("priority beyond xs:unsignedInt", "POST", "/events", _event_body(priority=2**32),
     "priority"),
    ("negative priority", "POST", "/events", _event_body(priority=-1), "priority"),
    # the XSD's anyURI: a VEN's validator refuses the oadrDistributeEvent, the event reaches nobody
    ("a market context that is no URI", "POST", "/events", _event_body(market_context="%%%"),
     "market_context must be a URI"),
    ("a market context with a bracket", "PUT", "/events/live",
     _event_body("live", market_context="[::1"), "market_context must be a URI"),
    # README: "an event starts within 100 years of now" (2127 is inside 1970..9000)
    ("a start 101 years ahead", "POST", "/events",
     _event_body(start=(datetime.now(UTC) + timedelta(days=101 * 366)).isoformat()),
     "start must be within"),
    ("test_event not a boolean", "POST", "/events", _event_body(test_event="yes"),
     "test_event must be true or false"),
    ("intervals adding up to 732 days", "POST", "/events",
     _event_body(signals=[{"name": "LOAD_DISPATCH", "intervals": [
         {"duration_s": 366 * 86400, "value": 1.0}, {"duration_s": 366 * 86400, "value": 2.0}]}]),
     "at most 366 days"),
    ("1,001 group IDs", "POST", "/events",
     _event_body(targets={"group_ids": [f"g{n}" for n in range(1001)]}), "at most 1000"),
    ("an unknown field", "POST", "/events", _event_body(duraton_s=900), "duraton_s"),
    ("an unknown signal type", "POST", "/events",
     _event_body(signals=[{"name": "LOAD_DISPATCH", "type": "loud",
                           "intervals": [{"duration_s": 900, "value": 3.0}]}]), "type"),
    ("a signal type that is a number", "POST", "/events",
     _event_body(signals=[{"name": "LOAD_DISPATCH", "type": 1,
                           "intervals": [{"duration_s": 900, "value": 3.0}]}]),
     "type must be one of"),
    ("response_required as a list", "POST", "/events",
     _event_body(response_required=["always"]), "response_required must be one of"),
    ("event_id differing from the URL", "PUT", "/events/live", _event_body("other"),
     "differs"),
    ("a body that is not an object", "POST", "/events", [1, 2], "JSON object"),
    ("a body that is not JSON", "POST", "/events", b"{nope", "not JSON"),
    ('"groups": "abcdef"', "PUT", "/vens/{ven}/memberships", {"groups": "abcdef"},
     "groups must be a JSON array"),
    ("a 10 kB group membership", "PUT", "/vens/{ven}/memberships",
     {"groups": ["g" * 10_000]}, "groups[0]"),
    ("granularity_s 1e308", "POST", "/vens/{ven}/reports/subscriptions",
     {"report_specifier_id": "spec-9", "r_ids": ["a"], "granularity_s": 1e308},
     "granularity_s"),
    ("negative report_back_duration_s", "POST", "/vens/{ven}/reports/subscriptions",
     {"report_specifier_id": "spec-9", "r_ids": ["a"], "report_back_duration_s": -1},
     "report_back_duration_s"),
    ("r_ids as a string", "POST", "/vens/{ven}/reports/subscriptions",
     {"report_specifier_id": "spec-9", "r_ids": "a"}, "r_ids must be a JSON array"),
    ("a report the VEN never offered", "POST", "/vens/{ven}/reports/subscriptions",
     {"report_specifier_id": "spec-never", "r_ids": ["a"]}, "never offered"),
    ("an rID the report does not have", "POST", "/vens/{ven}/reports/subscriptions",
     {"report_specifier_id": "spec-9", "r_ids": ["zz"]}, "no rID 'zz'"),
    ("a data window ending in year 10000", "GET",
     "/vens/{ven}/reports/data?end=10000-01-01T00:00:00%2B00:00", None, "end"),
    ("a data window ending in year 1", "GET",
     "/vens/{ven}/reports/data?end=0001-01-01T00:00:00%2B00:00", None, "end must lie from"),
    ("a naive data window", "GET", "/vens/{ven}/reports/data?start=2030-01-01T00:00:00",
     None, "UTC offset"),
)


async def test_every_hostile_admin_input_is_a_400_with_a_reason(pki, tmp_path):
    """#12 and #14 finding 9: each is refused with 400 naming its cause, never a 500 nor a
    404 (the IDs are known), and none of them changes anything."""
    async with running_vtn(pki, f"sqlite+aiosqlite:///{tmp_path / 'v.db'}") as vtn, \
            admin_client(vtn.app) as (http, base), \
            raw_ven(vtn.url, pki.client_context()) as ven:
        await ven.register("hostile-admin")
        await ven.post("EiReport", offer("spec-9", "a", "b"))
        await ven.drain()
        async with http.put(f"{base}/vens/{ven.ven_id}/memberships",
                            json={"groups": ["pool-1"]}) as reply:
            assert reply.status == 200
        async with http.post(f"{base}/events", json=_event_body("live")) as reply:
            assert reply.status == 201
        before = await _state(http, base, ven.ven_id)
        wrong = []
        for what, method, path, body, reason in HOSTILE:
            data = body if isinstance(body, bytes) else None if body is None else \
                json.dumps(body).encode()
            async with http.request(method, base + path.format(ven=ven.ven_id),
                                    data=data) as reply:
                text = await reply.text()
            if reply.status != 400 or reason not in text:
                wrong.append(f"{what}: {reply.status} {text[:200]!r}")
        assert wrong == []
        assert await _state(http, base, ven.ven_id) == before


async def _state(http: aiohttp.ClientSession, base: str, ven_id: str) -> object:
    async with http.get(f"{base}/events") as events, http.get(f"{base}/vens") as vens, \
            http.get(f"{base}/vens/{ven_id}/reports") as reports:
        return await events.json(), await vens.json(), await reports.json()


async def test_only_an_unknown_id_is_a_404(pki, tmp_path):
    async with running_vtn(pki, f"sqlite+aiosqlite:///{tmp_path / 'v.db'}") as vtn, \
            admin_client(vtn.app) as (http, base):
        async with http.put(f"{base}/events/nope", json=_event_body("nope")) as reply:
            assert reply.status == 404 and "no event 'nope'" in await reply.text()
        for method, path in (("PUT", "memberships"), ("POST", "reregister"), ("POST", "cancel"),
                             ("GET", "opts"), ("GET", "reports"), ("GET", "reports/data"),
                             ("POST", "reports/subscriptions"),
                             ("DELETE", "reports/subscriptions/rr-1")):
            async with http.request(method, f"{base}/vens/nope/{path}",
                                    json={"groups": []}) as reply:
                assert reply.status == 404, (method, path)
        async with http.put(f"{base}/events/{'e' * 10_000}", json=_event_body()) as reply:
            assert reply.status == 400  # too long to be any event's ID


def _listed(messages: list[Message]) -> list[str]:
    """The eventIDs of the one event list among ``messages``."""
    (sent,) = [m for m in messages if isinstance(m, DistributeEvent)]
    return [e.event_id for e in sent.events]


async def test_a_membership_change_sends_the_vens_new_event_list(pki, storage_url):
    """#12: a VEN added to a group receives that group's live events at its next poll, and
    one removed from it an event list without them (implied cancel); a change no live event
    targets queues nothing."""
    async with running_vtn(pki, storage_url) as vtn, admin_client(vtn.app) as (http, base), \
            raw_ven(vtn.url, pki.client_context()) as ven:
        await ven.register("joins-later")
        await ven.drain()
        members = f"{base}/vens/{ven.ven_id}/memberships"
        async with http.post(f"{base}/events", json=_event_body("pool-ev")) as reply:
            assert (await reply.json())["targeted"] == []
        assert await ven.drain() == []

        async with http.put(members, json={"groups": ["pool-1"]}) as reply:
            assert (await reply.json())["events_changed"] == ["pool-ev"]
        assert _listed(await ven.drain()) == ["pool-ev"]
        async with http.get(f"{base}/events/pool-ev") as reply:
            (delivery,) = (await reply.json())["deliveries"]
        assert delivery["ven_id"] == ven.ven_id

        async with http.put(members, json={"groups": ["pool-1", "pool-9"]}) as reply:
            assert (await reply.json())["events_changed"] == []
        assert await ven.drain() == []

        async with http.put(members, json={"groups": ["pool-9"]}) as reply:
            assert (await reply.json())["events_changed"] == ["pool-ev"]
        assert _listed(await ven.drain()) == []


async def test_a_returning_ven_is_sent_the_live_events_its_memberships_select(pki, tmp_path):
    """A VEN whose registration ended keeps its memberships; registering again it is queued
    the live events they select, published while it was away (it was not targeted then)."""
    async with running_vtn(pki, f"sqlite+aiosqlite:///{tmp_path / 'v.db'}") as vtn, \
            admin_client(vtn.app) as (http, base), \
            raw_ven(vtn.url, pki.client_context()) as ven:
        await ven.register("returns")
        await ven.drain()
        async with http.put(f"{base}/vens/{ven.ven_id}/memberships",
                            json={"groups": ["pool-1"]}) as reply:
            assert reply.status == 200
        cancel = CancelPartyRegistration(request_id="bye", registration_id=ven.registration_id,
                                         ven_id=ven.ven_id)
        assert isinstance(await ven.post("EiRegisterParty", cancel), CanceledPartyRegistration)
        async with http.post(f"{base}/events", json=_event_body("while-away")) as reply:
            assert (await reply.json())["targeted"] == []
        await ven.register("returns")
        assert _listed(await ven.drain()) == ["while-away"]


async def test_a_subscription_the_ven_refuses_shows_its_code_and_reason(pki, storage_url):
    """#12: a VEN answering the oadrCreateReport with an error code leaves the subscription
    ``refused`` with that code and reason, not ``pending`` for ever."""
    async with running_vtn(pki, storage_url) as vtn, admin_client(vtn.app) as (http, base), \
            raw_ven(vtn.url, pki.client_context()) as ven:
        await ven.register("refuses")
        await ven.post("EiReport", offer("spec-9", "a"))
        await ven.drain()
        subscriptions = f"{base}/vens/{ven.ven_id}/reports/subscriptions"
        async with http.post(subscriptions,
                             json={"report_specifier_id": "spec-9", "r_ids": ["a"]}) as reply:
            rrid = (await reply.json())["report_request_id"]
        async with http.post(subscriptions, json={"report_specifier_id": "spec-9", "r_ids": ["a"],
                                                  "report_request_id": rrid}) as reply:
            assert reply.status == 409  # not a silent replacement
        (create,) = await ven.drain()
        assert isinstance(create, CreateReport)
        spec = create.report_requests[0].report_specifier  # the README's defaults
        assert spec.granularity == spec.report_back_duration == vtn.ctx.default_granularity
        assert spec.specifier_payloads[0].reading_type == "x-notApplicable"
        refusal = CreatedReport(ven_id=ven.ven_id, response=EiResponse(
            code=452, description="report spec-9 is gone", request_id=create.request_id))
        assert code_of(await ven.post("EiReport", refusal)) == 200
        async with http.get(f"{base}/vens/{ven.ven_id}/reports") as reply:
            (sub,) = (await reply.json())["subscriptions"]
        assert (sub["report_request_id"], sub["status"]) == (rrid, "refused")
        assert (sub["refusal_code"], sub["refusal_reason"]) == (452, "report spec-9 is gone")


async def test_what_an_event_body_may_leave_out(pki, tmp_path):
    """The README's defaults: a new event_id, duration_s the sum of the first signal's
    intervals, type level, response_required always; a PUT body need not repeat the ID."""
    async with running_vtn(pki, f"sqlite+aiosqlite:///{tmp_path / 'v.db'}") as vtn, \
            admin_client(vtn.app) as (http, base), \
            raw_ven(vtn.url, pki.client_context()) as ven:
        await ven.register("defaults")
        await ven.drain()
        body = _event_body(targets={"ven_ids": [ven.ven_id]}, signals=[
            {"name": "LOAD_DISPATCH", "intervals": [{"duration_s": 900, "value": 4.0},
                                                    {"duration_s": 900, "value": 1.0}]}])
        del body["event_id"]
        body["priority"] = None  # null: left out
        async with http.post(f"{base}/events", json=body) as reply:
            assert reply.status == 201
            event_id = (await reply.json())["event_id"]
        async with http.get(f"{base}/events/{event_id}") as reply:
            stored = await reply.json()
        start, end = (datetime.fromisoformat(stored[k]) for k in ("start", "end"))
        assert end - start == timedelta(seconds=1800)
        (sent,) = [m for m in await ven.drain() if isinstance(m, DistributeEvent)]
        (event,) = sent.events
        assert event.signals[0].signal_type is SignalType.LEVEL
        assert event.response_required is ResponseRequired.ALWAYS
        async with http.put(f"{base}/events/{event_id}", json=body) as reply:
            assert (await reply.json())["modification_number"] == 1
