"""The payload families' wire tables, merged: message class -> encoder, payload tag -> decoder.

Each family module owns its dataclasses (public) and a private ``_<family>_xml`` module with
``ENCODERS`` and ``DECODERS``; adding a family is one import here. A codec takes its encoders
from :func:`encoders`, which adds the one encoder that needs the codec's own cache.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lxml import etree

from . import _events_xml, _opt_xml, _poll_xml, _registration_xml, _reports_xml
from ._base import Message
from ._event_cache import EventEncodeCache
from ._writer import Node
from .events import DistributeEvent

Encoder = Callable[[Node, Any], None]
Decoder = Callable[[etree._Element], Message]

_TABLES = (_poll_xml, _registration_xml, _events_xml, _reports_xml, _opt_xml)

ENCODERS: dict[type[Message], Encoder] = {}
DECODERS: dict[str, Decoder] = {}
for _table in _TABLES:
    ENCODERS.update(_table.ENCODERS)
    DECODERS.update(_table.DECODERS)


def encoders(events: EventEncodeCache) -> dict[type[Message], Encoder]:
    """Message class -> encoder, oadrDistributeEvent's building or copying through ``events``."""
    return {**ENCODERS, DistributeEvent: _events_xml.distribute_event_encoder(events)}
