"""The OpenADR 2.0b Simple HTTP services: their names and the path both nodes serve them under.

OpenADR 2.0b profile 9.1.2: a VTN serves each service at ``{SERVICE_PREFIX}/{service}``; a VEN
posts there (and, in push mode, serves the same paths itself). The VTN and the VEN both import
this vocabulary from here, the layer below them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = ["SERVICE_PREFIX", "Service"]

SERVICE_PREFIX: Final = "/OpenADR2/Simple/2.0b"


class Service(StrEnum):
    """The five 2.0b service endpoints (profile 9.1.2)."""

    REGISTER_PARTY = "EiRegisterParty"
    EVENT = "EiEvent"
    REPORT = "EiReport"
    OPT = "EiOpt"
    POLL = "OadrPoll"
