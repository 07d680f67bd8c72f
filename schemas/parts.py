"""Parts shared by several payload families: the ei:eiResponse status and ei:eiTarget.

OpenADR 2.0b profile: targets (EiTargetType) address events, opt schedules and report data sources
by venID, groupID/groupName, resourceID and partyID; the EMIX/power location elements are carried as
opaque strings we do not interpret. IDs stay strings exactly as received.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from ._base import builder
from ._wire import (
    EI,
    PYLD,
    q,
)
from ._writer import Node, leaf, leaf_all, leaf_opt, leaf_value, sub

__all__ = ["EiResponse", "Target", "echoed_request_id"]

_RESPONSE = q(EI, "eiResponse")
_CODE = q(EI, "responseCode")
_DESCRIPTION = q(EI, "responseDescription")
_REQUEST_ID = q(PYLD, "requestID")


@dataclass(frozen=True, slots=True, kw_only=True)
class EiResponse:
    """Outcome of a request: ``code`` 200 is success, 4xx/450-469 are OpenADR error codes."""

    code: int = 200
    description: str | None = "OK"
    request_id: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300


def echoed_request_id(message: object) -> str:
    """The requestID an answer to ``message`` carries in its eiResponse: the message's own
    requestID, else the one its eiResponse acknowledges (oadrCreatedEvent, oadrResponse...);
    ``""`` for oadrPoll, which has neither."""
    own = getattr(message, "request_id", None)
    if isinstance(own, str):
        return own
    response = getattr(message, "response", None)
    return response.request_id if isinstance(response, EiResponse) else ""


def encode_response(parent: Node, response: EiResponse, tag: str = _RESPONSE) -> None:
    element = sub(parent, tag)
    leaf_value(element, _CODE, f"{response.code:03d}")
    leaf_opt(element, _DESCRIPTION, response.description)
    leaf(element, _REQUEST_ID, response.request_id)


def decode_response(element: etree._Element) -> EiResponse:
    # XSD sequence: ei:responseCode, ei:responseDescription?, pyld:requestID
    return EiResponse(
        code=int(element[0].text or ""),
        description=element[1].text or "" if len(element) == 3 else None,
        request_id=element[-1].text or "",
    )


_TARGET = q(EI, "eiTarget")
_GROUP_ID = q(EI, "groupID")
_GROUP_NAME = q(EI, "groupName")
_RESOURCE_ID = q(EI, "resourceID")
_VEN_ID = q(EI, "venID")
_PARTY_ID = q(EI, "partyID")


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """An ei:eiTarget restricted to the identifiers the 2.0b profile uses."""

    group_ids: tuple[str, ...] = ()
    group_names: tuple[str, ...] = ()
    resource_ids: tuple[str, ...] = ()
    ven_ids: tuple[str, ...] = ()
    party_ids: tuple[str, ...] = ()

    def matches(self, *, ven_id: str, groups: frozenset[str] = frozenset(),
                resources: frozenset[str] = frozenset(), party_id: str | None = None) -> bool:
        """Whether a VEN with these attributes is addressed; an empty target addresses everyone."""
        if not (self.group_ids or self.group_names or self.resource_ids or self.ven_ids
                or self.party_ids):
            return True
        return (
            ven_id in self.ven_ids
            or bool(groups.intersection(self.group_ids))
            or bool(groups.intersection(self.group_names))
            or bool(resources.intersection(self.resource_ids))
            or (party_id is not None and party_id in self.party_ids)
        )


def encode_target(parent: Node, target: Target, tag: str = _TARGET) -> None:
    element = sub(parent, tag)
    leaf_all(element, _GROUP_ID, target.group_ids)
    leaf_all(element, _GROUP_NAME, target.group_names)
    leaf_all(element, _RESOURCE_ID, target.resource_ids)
    leaf_all(element, _VEN_ID, target.ven_ids)
    leaf_all(element, _PARTY_ID, target.party_ids)


_new_target = builder(Target)


def decode_target(element: etree._Element) -> Target:
    # One pass over the children (each kind may repeat) rather than one scan per kind; the
    # lists are made for the kinds found only (other eiTarget children are found and skipped).
    found: dict[str, list[str]] = {}
    for part in element:
        tag = part.tag
        texts = found.get(tag)
        if texts is None:
            found[tag] = [part.text or ""]
        else:
            texts.append(part.text or "")
    return _new_target(
        group_ids=tuple(found.get(_GROUP_ID, ())),
        group_names=tuple(found.get(_GROUP_NAME, ())),
        resource_ids=tuple(found.get(_RESOURCE_ID, ())),
        ven_ids=tuple(found.get(_VEN_ID, ())),
        party_ids=tuple(found.get(_PARTY_ID, ())),
    )
