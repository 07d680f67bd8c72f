"""The three CBP roles on the crowdflex framework (docs/architecture.md#the-cbp-profile-on-openadr).

    TsoNode         a VTN for aggregators: registry, offer book, activations, validation, settlement
    AggregatorNode  a VTN for its devices and a VEN towards the TSO, behind the OutboundFilter;
                    AggregatorNode.status() is what it has done so far (AggregatorStatus)
    DeviceFleet     many device VENs (DeviceNode) with simulators on one event loop

``CbpSettings`` carries every number they share; ``CbpSettings.compressed()`` runs an ISP in a
minute. The profile's OpenADR messages are built and read in :mod:`cbp.roles.messages`.
"""

from __future__ import annotations

from .aggregator import AggregatorNode, DispatchedActivation, OfferOutcome
from .device import DeviceFleet, DeviceIdentity, DeviceNode
from .outbound import FilteredCodec
from .profile import CbpSettings, CbpTiming
from .status import AggregatorStatus
from .tso import Activation, OfferRecord, OfferRefused, TsoNode, ramp_setpoints

__all__ = [
    "Activation", "AggregatorNode", "AggregatorStatus", "CbpSettings", "CbpTiming", "DeviceFleet",
    "DeviceIdentity", "DeviceNode", "DispatchedActivation", "FilteredCodec", "OfferOutcome",
    "OfferRecord", "OfferRefused", "TsoNode", "ramp_setpoints",
]  # fmt: skip
