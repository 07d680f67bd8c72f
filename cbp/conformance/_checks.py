"""The few assertions cases and rules share: a payload of the expected kind, a condition, a
refusal, an xsi:schemaLocation anywhere in a payload.

Each raises :class:`~cbp.conformance.CaseFailed` with a reason a tester can act on.
"""

from __future__ import annotations

from typing import Final, TypeVar

from lxml import etree

from schemas import Message, Response

from ._model import CaseFailed, Exchange

__all__ = ["carries_schema_location", "expect", "ok", "refused", "require"]

M = TypeVar("M", bound=Message)


def require(condition: object, reason: str) -> None:
    if not condition:
        raise CaseFailed(reason)


def expect(message: Message, kind: type[M]) -> M:
    """``message`` as a ``kind``, or :class:`CaseFailed` naming what came instead."""
    if isinstance(message, kind):
        return message
    if isinstance(message, Response):
        raise CaseFailed(f"expected oadr{kind.__name__}, got oadrResponse "
                         f"{message.response.code} {message.response.description}")
    raise CaseFailed(f"expected oadr{kind.__name__}, got oadr{type(message).__name__}")


def ok(message: Message, kind: type[M]) -> M:
    """Like :func:`expect`, and its eiResponse must say 200."""
    got = expect(message, kind)
    response = getattr(got, "response", None)
    if response is not None and response.code != 200:
        raise CaseFailed(f"oadr{kind.__name__} answered {response.code} "
                         f"{response.description}, not 200")
    return got


def refused(exchange: Exchange, *, codes: frozenset[int] | None = None) -> str:
    """The node refused the request: an OpenADR error code in the reply (one of ``codes`` when
    given), an HTTP 4xx or an XMPP error stanza. Success, an HTTP 5xx or a reply that does not
    decode fail the case."""
    if exchange.status is not None and 400 <= exchange.status < 500:
        return f"HTTP {exchange.status}"
    if exchange.refusal is not None:
        return exchange.refusal
    received = exchange.received
    if received is None:
        raise CaseFailed(f"no usable refusal: {exchange.error}")
    response = getattr(received, "response", None)
    if response is None:
        raise CaseFailed(f"answered {exchange.received_name}, which is no refusal")
    code = response.code
    if 200 <= code < 300:
        raise CaseFailed(f"accepted it: {exchange.received_name} {code}")
    if codes is not None and code not in codes:
        raise CaseFailed(f"refused with {code}, not {' or '.join(map(str, sorted(codes)))}")
    return f"{exchange.received_name} {code} {response.description or ''}".strip()


_SCHEMA_LOCATION: Final = "{http://www.w3.org/2001/XMLSchema-instance}schemaLocation"


def carries_schema_location(tree: etree._Element | None) -> bool:
    """Whether any element of ``tree`` has an xsi:schemaLocation attribute (the profile
    forbids it in a payload)."""
    return tree is not None and any(_SCHEMA_LOCATION in e.attrib for e in tree.iter()
                                    if isinstance(e.tag, str))
