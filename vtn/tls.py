"""The VTN's TLS: its mutual-TLS server context and the fingerprint of the VEN on a connection.

The settings themselves live in :mod:`schemas.tls`, shared with the VEN; the VEN is known by the
OpenADR fingerprint of its certificate, which the services bind to its venID
(docs/architecture.md#a-messages-life, step 2; OpenADR 2.0b profile, security section).
"""

from __future__ import annotations

from schemas.tls import client_context as push_client_context
from schemas.tls import peer_fingerprint, server_context

__all__ = ["peer_fingerprint", "push_client_context", "server_context"]
