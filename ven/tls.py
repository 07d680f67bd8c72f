"""The VEN's TLS: its mutual-TLS client context and the fingerprint of the VTN on a connection.

The settings themselves live in :mod:`schemas.tls`, shared with the VTN. A VEN verifies the VTN's
certificate against the configured CA and host name and presents its own, whose fingerprint the VTN
binds to the venID; it may further pin its VTN by :func:`server_fingerprint`.
"""

from __future__ import annotations

from schemas.tls import client_context, server_context
from schemas.tls import peer_fingerprint as server_fingerprint

__all__ = ["client_context", "server_context", "server_fingerprint"]
