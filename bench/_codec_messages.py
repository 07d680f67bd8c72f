"""The codec benchmark's input: one message per 2.0b payload type, written by openleadr's
``create_message`` with every optional field the XSD allows there and its template can write.

``PAYLOADS`` maps each payload type to the keyword arguments given to ``create_message``;
``UNWRITABLE`` names, per type, the optional parts of the XSD openleadr 0.5.36's templates cannot
write (they are absent from that type's message). ``tests/bench/test_codec_messages.py`` checks
that every message is XSD-valid and that our codec decodes it and writes it back without loss.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

_T0 = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)
_CREATED = datetime(2026, 12, 7, 13, 54, 12, tzinfo=UTC)
_VEN = "agg-flexcrowd-01"
_MARKET = "https://tso.example.nl/cbp/mFRR"


def _response(request_id: str) -> dict[str, Any]:
    return {"response_code": 200, "response_description": "OK", "request_id": request_id}


def _power(description: str = "RealPower") -> dict[str, Any]:
    return {"ns": "power", "name": "powerReal", "description": description, "unit": "W",
            "scale": "M", "power_attributes": {"hertz": 50, "voltage": 380000, "ac": True}}


def _report_request(n: int) -> dict[str, Any]:
    return {
        "report_request_id": f"rr-telemetry-{n}",
        "report_specifier": {
            "report_specifier_id": "telemetry-pool",
            "granularity": timedelta(seconds=4),
            "report_back_duration": timedelta(seconds=60),
            "report_interval": {"dtstart": _T0, "duration": timedelta(hours=1)},
            "specifier_payloads": [
                {"r_id": f"psn1_resource_{i}", "reading_type": "Direct Read"} for i in range(3)
            ],
        },
    }


def _description(r_id: str) -> dict[str, Any]:
    return {
        "r_id": r_id,
        "report_subject": {"end_device_asset": {"mrid": "heat-pump-11kw"}},
        "report_data_source": {"group_id": "pool-nl-1", "group_name": "pool NL 1",
                               "resource_id": r_id, "ven_id": _VEN, "party_id": "party-7"},
        "report_type": "usage",
        "measurement": _power(),
        "reading_type": "Direct Read",
        "market_context": _MARKET,
        "sampling_rate": {"min_period": timedelta(seconds=4), "max_period": timedelta(minutes=1),
                          "on_change": False},
    }


def _signal(n: int) -> dict[str, Any]:
    return {
        "intervals": [
            {"dtstart": _T0 + timedelta(minutes=15 * i), "duration": timedelta(minutes=15),
             "signal_payload": 6.0 * (i + 1)}
            for i in range(4)
        ],
        "signal_name": "LOAD_DISPATCH",
        "signal_type": "setpoint",
        "signal_id": f"sig-load-dispatch-{n}",
        "measurement": _power(),
        "current_value": 0.0,
    }


def _event(n: int) -> dict[str, Any]:
    return {
        "event_descriptor": {
            "event_id": f"act-20261207-1400-{n}",
            "modification_number": 1,
            "modification_date_time": _CREATED + timedelta(minutes=1),
            "modification_reason": "volume corrected",
            "priority": 1,
            "market_context": _MARKET,
            "created_date_time": _CREATED,
            "event_status": "far",
            "test_event": False,
            "vtn_comment": "upward activation, ISPs 57-60",
        },
        "active_period": {
            "dtstart": _T0,
            "duration": timedelta(hours=1),
            "tolerance": {"startafter": timedelta(seconds=30)},
            "notification_period": timedelta(minutes=5),
            "ramp_up_period": timedelta(minutes=2),
            "recovery_period": timedelta(minutes=3),
        },
        "event_signals": [_signal(1), _signal(2)],
        "targets": [{"group_id": "pool-nl-1"}, {"group_name": "pool NL 1"},
                    {"resource_id": "psn1_resource_0"}, {"ven_id": _VEN},
                    {"party_id": "party-7"}],
        "response_required": "always",
    }


def _update_interval(i: int) -> dict[str, Any]:
    return {
        "dtstart": _T0 + timedelta(seconds=4 * i),
        "duration": timedelta(seconds=4),
        "report_payload": {"r_id": "psn1_resource_0", "confidence": 95, "accuracy": 0.1,
                           "value": 4.2 - 0.1 * i, "data_quality": "Quality Good - Non Specific"},
    }


PAYLOADS: dict[str, dict[str, Any]] = {
    "oadrCancelOpt": {"request_id": "opt-cancel-0313", "opt_id": "avail-2026-12-07",
                      "ven_id": _VEN},
    "oadrCancelPartyRegistration": {"request_id": "cancel-reg-91",
                                    "registration_id": "registration-000417", "ven_id": _VEN},
    "oadrCancelReport": {"request_id": "cancel-msp-1400", "report_request_id": "rr-msp-1400",
                         "report_to_follow": True, "ven_id": _VEN},
    "oadrCanceledOpt": {"response": _response("opt-cancel-0313"), "opt_id": "avail-2026-12-07"},
    "oadrCanceledPartyRegistration": {"response": _response("cancel-reg-91"),
                                      "registration_id": "registration-000417", "ven_id": _VEN},
    "oadrCanceledReport": {
        "response": _response("cancel-msp-1400"),
        "pending_reports": [{"report_request_id": f"rr-telemetry-{n}"} for n in range(3)],
        "ven_id": _VEN,
    },
    "oadrCreateOpt": {
        "opt_id": "optout-act-1400", "opt_type": "optOut", "opt_reason": "overrideStatus",
        "market_context": _MARKET, "ven_id": _VEN,
        "vavailability": {"components": [
            {"dtstart": _T0 + timedelta(hours=h), "duration": timedelta(hours=1)}
            for h in range(2)
        ]},
        "created_date_time": _CREATED, "request_id": "opt-req-0312",
        "event_id": "act-20261207-1400-1", "modification_number": 1,
        "targets": [{"group_id": "pool-nl-1", "group_name": "pool NL 1",
                     "resource_id": "psn1_resource_0", "ven_id": _VEN, "party_id": "party-7"}],
        "signal_target_mrid": "heat-pump-11kw",
    },
    "oadrCreatePartyRegistration": {
        "request_id": "reg-7c1e0b", "registration_id": "registration-000417", "ven_id": _VEN,
        "profile_name": "2.0b", "transport_name": "simpleHttp",
        "transport_address": "https://ven.example.nl/OpenADR2/Simple/2.0b",
        "report_only": False, "xml_signature": False, "ven_name": "heat-pump 11 kW",
        "http_pull_model": True,
    },
    "oadrCreateReport": {"request_id": "crep-msp-1400",
                         "report_requests": [_report_request(1), _report_request(2)],
                         "ven_id": _VEN},
    "oadrCreatedEvent": {
        "response": _response("dist-20261207-1400"),
        "event_responses": [
            {"response_code": 200, "response_description": "OK",
             "request_id": "dist-20261207-1400", "event_id": f"act-20261207-1400-{n}",
             "modification_number": 1, "opt_type": "optIn"}
            for n in (1, 2)
        ],
        "ven_id": _VEN,
    },
    "oadrCreatedOpt": {"response": _response("opt-req-0311"), "opt_id": "avail-2026-12-07"},
    "oadrCreatedPartyRegistration": {
        "response": _response("reg-7c1e0b"), "registration_id": "registration-000417",
        "ven_id": _VEN, "vtn_id": "tso-nl-vtn",
        "profiles": [
            {"profile_name": "2.0a", "transports": [{"transport_name": "simpleHttp"}]},
            {"profile_name": "2.0b",
             "transports": [{"transport_name": "simpleHttp"}, {"transport_name": "xmpp"}]},
        ],
        "requested_oadr_poll_freq": timedelta(seconds=10),
    },
    "oadrCreatedReport": {
        "response": _response("crep-msp-1400"),
        "pending_reports": [{"report_request_id": f"rr-telemetry-{n}"} for n in range(3)],
        "ven_id": _VEN,
    },
    "oadrDistributeEvent": {"response": _response("req-evt-0042"),
                            "request_id": "dist-20261207-1400", "vtn_id": "tso-nl-vtn",
                            "events": [_event(1), _event(2)]},
    "oadrPoll": {"ven_id": _VEN},
    "oadrQueryRegistration": {"request_id": "qr-2026-12-07-0001"},
    "oadrRegisterReport": {
        "request_id": "regrep-pool-0007",
        "reports": [{
            "duration": timedelta(hours=2),
            "report_id": "telemetry-pool-0007",
            "report_descriptions": [_description(f"psn1_resource_{i}") for i in range(3)],
            "report_request_id": "0",
            "report_specifier_id": "telemetry-pool",
            "report_name": "TELEMETRY_USAGE",
            "created_date_time": _CREATED,
        }],
        "ven_id": _VEN,
    },
    "oadrRegisteredReport": {"response": _response("regrep-pool-0007"),
                             "report_requests": [_report_request(1), _report_request(2)],
                             "ven_id": _VEN},
    "oadrRequestEvent": {"request_id": "req-evt-0042", "ven_id": _VEN, "reply_limit": 10},
    "oadrRequestReregistration": {"ven_id": _VEN},
    "oadrResponse": {"response": _response("upd-telemetry-140000"), "ven_id": _VEN},
    "oadrUpdateReport": {
        "request_id": "upd-telemetry-140000",
        "reports": [{
            "dtstart": _T0,
            "intervals": [_update_interval(i) for i in range(10)],
            "report_id": "rep-upd-telemetry-140000",
            "report_descriptions": [_description("psn1_resource_0")],
            "report_request_id": "rr-telemetry-1",
            "report_specifier_id": "telemetry-pool",
            "report_name": "TELEMETRY_USAGE",
            "created_date_time": _T0 + timedelta(seconds=41),
        }],
        "ven_id": _VEN,
    },
    "oadrUpdatedReport": {
        "response": _response("upd-telemetry-140000"),
        "cancel_report": {"request_id": "cancel-msp-1400",
                          "report_request_id": ["rr-msp-1400", "rr-msp-1415"],
                          "report_to_follow": False, "ven_id": _VEN},
        "ven_id": _VEN,
    },
}

# What the 2.0b XSD allows in each type that openleadr 0.5.36's template for it cannot write.
UNWRITABLE: dict[str, str] = {
    "oadrCancelReport": "a second ei:reportRequestID (its template writes one)",
    "oadrCreatedPartyRegistration": "oadrServiceSpecificInfo",
    "oadrDistributeEvent": "ei:eiEventBaseline, ei:eiReportRequests (the template's closing tag"
                           " is broken), a signal's ei:eiTarget, emix interfaces in eiTarget",
    "oadrRegisterReport": "xcal:dtstart and strm:intervals of an oadrReport",
    "oadrUpdateReport": "an oadrReport's xcal:duration; oadrPayloadResourceStatus (payloadFloat"
                        " only)",
}


def openleadr_message(kind: str) -> bytes:
    """``kind``'s message as openleadr's ``create_message`` writes it from ``PAYLOADS``."""
    from openleadr.messaging import create_message

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openleadr's deprecation chatter
        written = create_message(kind, **PAYLOADS[kind])
    return written.encode() if isinstance(written, str) else written


def without_report_subject(value: Any) -> Any:
    """``value`` (what openleadr's ``parse_message`` returns) with every report description's
    ``report_subject`` taken out: its endDeviceAsset is the one part of these messages our codec
    does not keep (``schemas.Target`` holds the 2.0b profile's identifiers only)."""
    if isinstance(value, dict):
        return {k: without_report_subject(v) for k, v in value.items() if k != "report_subject"}
    if isinstance(value, list | tuple):
        return [without_report_subject(v) for v in value]
    return value
