"""The floor under every VTN's CPU per registration: one mutual-TLS handshake, server side.

Each handshake runs in this process between two memory BIOs (no socket, no event loop, no HTTP),
the client end presenting a VEN certificate, the server end on one of two contexts: our VTN's own
(:func:`vtn.app.server_ssl_context`: TLS 1.3, EC P-256 certificates, client certificate required
and verified, no session tickets) and openleadr's, built as its ``OpenADRServer`` builds it
(``PROTOCOL_TLS_SERVER``, the CA, ``CERT_REQUIRED``, the same certificate), which writes
OpenSSL's default two TLS 1.3 session tickets after each handshake. Only the thread CPU of the
server end's calls is counted, tickets included. The two are sampled in turn (ours, openleadr,
openleadr, ours, ...) so both see the same moment of the machine's load. Each VTN's CPU per
registration is its handshake plus everything above it: the ratio of two registrations cannot be
better than what the handshakes leave.

Invariants: nothing touches the network; every handshake completes (a failed one raises).
"""

from __future__ import annotations

import ssl
import statistics
import time
from pathlib import Path

__all__ = ["handshake_cpu_s", "median_ms"]


def handshake_cpu_s(*, cert: Path, key: Path, ca: Path, ven_cert: Path, ven_key: Path,
                    handshakes: int = 200, samples: int = 5) -> dict[str, list[float]]:
    """Server CPU seconds per handshake on ``"ours"`` and ``"openleadr"``'s context: one figure
    per sample of ``handshakes``, ``samples`` of each."""
    from vtn.app import server_ssl_context
    from vtn.settings import VtnConfig

    theirs = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # as openleadr.OpenADRServer builds it
    theirs.load_verify_locations(str(ca))
    theirs.verify_mode = ssl.CERT_REQUIRED
    theirs.load_cert_chain(str(cert), str(key))
    servers = {"ours": server_ssl_context(VtnConfig(tls_cert=cert, tls_key=key, tls_ca=ca)),
               "openleadr": theirs}
    client = ssl.create_default_context(cafile=str(ca))
    client.check_hostname = False  # the server is known here; its chain is still verified
    client.load_cert_chain(str(ven_cert), str(ven_key))
    found: dict[str, list[float]] = {name: [] for name in servers}
    for sample in range(samples):
        for name in (servers if sample % 2 == 0 else reversed(servers)):
            server = servers[name]
            found[name].append(sum(_one(server, client) for _ in range(handshakes)) / handshakes)
    return found


def _one(server: ssl.SSLContext, client: ssl.SSLContext) -> float:
    to_server, from_server, to_client, from_client = (ssl.MemoryBIO() for _ in range(4))
    server_end = server.wrap_bio(to_server, from_server, server_side=True)
    client_end = client.wrap_bio(to_client, from_client, server_side=False)
    spent, server_done, client_done = 0.0, False, False
    for _ in range(8):  # TLS 1.3 with a client certificate takes two round trips
        client_done = client_done or _step(client_end)
        to_server.write(from_client.read())
        started = time.thread_time()
        server_done = server_done or _step(server_end)
        from_server_bytes = from_server.read()  # the tickets, too, once it is done
        spent += time.thread_time() - started
        to_client.write(from_server_bytes)
        if server_done and client_done:
            return spent
    raise RuntimeError("the handshake did not complete")


def _step(end: ssl.SSLObject) -> bool:
    try:
        end.do_handshake()
    except ssl.SSLWantReadError:
        return False
    return True


def median_ms(values: list[float]) -> str:
    return (f"{statistics.median(values) * 1000:.2f} ms"
            f" ({min(values) * 1000:.2f}-{max(values) * 1000:.2f})")
