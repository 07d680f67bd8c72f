"""Certificate revocation on the VTN: the CRL file is re-read without a restart.

A server's ``ssl.SSLContext`` is handed to the listening socket once, and OpenSSL cannot drop a CRL
from a context's store. So :class:`RevocationWatcher` keeps the listening ("front") context and, in
its SNI callback (OpenSSL calls it for every ClientHello, with or without a server name), checks the
CRL file's identity (mtime, size, inode: one ``stat``, far below a handshake's cost). When the file
changed it builds a fresh context from the same certificate, key, CA and profile plus the new CRL,
and hands every new handshake to the newest context (``SSLObject.context = ...``, which switches
the whole OpenSSL ``SSL_CTX``, verify store included). Connections already open are not this
module's: the application closes those whose certificate a changed list revokes
(:func:`vtn.app.create_app`, :class:`vtn.certpath.CertificatePath`).

Invariants:
- A CRL that cannot be read or parsed never opens the door: the last good context stays in use and
  the failure is logged once per file version. A removed file keeps the last good list too.
- No session tickets (TLS 1.3 or 1.2): a resumed session skips certificate verification, so a
  ticket minted before a revocation would outlive it. OpenSSL still resumes TLS 1.2 sessions from
  its server-side session-ID cache, which Python cannot switch off: the certificate of every
  resumed session is checked against the current list when it is admitted
  (:class:`vtn.connections.Connections`).
- Nothing is global: each watcher owns its contexts; several VTNs run side by side.

:class:`CrlFile` gives the same file's CRLs, on the same terms, to the XML-signature checks
(:class:`schemas.certpath.PathCheck`), so a signer is refused for revocation exactly when a TLS
client would be.
"""

from __future__ import annotations

import logging
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from schemas.identity import TlsProfile
from schemas.tls import server_context
from vtn.certpath import file_version

__all__ = ["CrlFile", "RevocationWatcher", "reloading_server_context"]

log = logging.getLogger(__name__)

@dataclass(frozen=True, slots=True, kw_only=True)
class _Material:
    cert: Path
    key: Path
    ca: Path
    crl: Path
    profile: TlsProfile


class RevocationWatcher:
    """The front server context of a VTN whose CRL file may change while it runs.

    ``context`` goes to the listener; ``reloads`` counts CRL versions taken into use after the
    first, ``failures`` versions refused (unreadable or unparsable).
    """

    __slots__ = ("_current", "_material", "_seen", "context", "failures", "reloads")

    def __init__(self, *, cert: Path, key: Path, ca: Path, crl: Path,
                 profile: TlsProfile = TlsProfile.TLS13) -> None:
        self._material = _Material(cert=Path(cert), key=Path(key), ca=Path(ca), crl=Path(crl),
                                   profile=profile)
        self._seen = file_version(self._material.crl)
        # The first build must succeed: a CRL the VTN cannot read at start is a config error.
        self.context = self._build()
        self.context.sni_callback = self._select
        self._current = self.context
        self.reloads = 0
        self.failures = 0

    def _build(self) -> ssl.SSLContext:
        m = self._material
        context = server_context(cert=m.cert, key=m.key, ca=m.ca, profile=m.profile, crl=m.crl)
        context.num_tickets = 0
        context.options |= ssl.OP_NO_TICKET
        return context

    def current(self) -> ssl.SSLContext:
        """The context for a handshake starting now, rebuilt first if the CRL file changed."""
        version = file_version(self._material.crl)
        if version is None or version == self._seen:
            return self._current
        self._seen = version
        try:
            fresh = self._build()
        except (OSError, ssl.SSLError, ValueError) as exc:
            self.failures += 1
            log.error("CRL %s could not be loaded (%s); still using the previous list",
                      self._material.crl, exc)
            return self._current
        self._current = fresh
        self.reloads += 1
        log.info("CRL %s reloaded (version %d)", self._material.crl, self.reloads)
        return fresh

    def _select(self, ssl_object: ssl.SSLObject, _server_name: str | None,
                front: ssl.SSLContext) -> None:
        chosen = self.current()
        if chosen is not front:
            ssl_object.context = chosen


def reloading_server_context(*, cert: Path, key: Path, ca: Path, crl: Path,
                             profile: TlsProfile = TlsProfile.TLS13) -> ssl.SSLContext:
    """A mutual-TLS server context whose revocation list follows the file at ``crl``."""
    return RevocationWatcher(cert=cert, key=key, ca=ca, crl=crl, profile=profile).context


_PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.DOTALL)


def _load_crls(path: Path) -> tuple[x509.CertificateRevocationList, ...]:
    crls = tuple(x509.load_pem_x509_crl(block) for block in _PEM_CRL.findall(path.read_bytes()))
    if not crls:
        raise ValueError("no PEM CRL in the file")
    return crls


class CrlFile:
    """The CRLs in a PEM file, re-read when the file changed (one ``stat`` per call otherwise).

    Like :class:`RevocationWatcher`: the first read must succeed; later, an unreadable or removed
    file keeps the last good list, logged once per file version. Safe to call from any thread.
    """

    __slots__ = ("_crls", "_path", "_seen")

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._seen = file_version(self._path)
        self._crls = _load_crls(self._path)

    def __call__(self) -> tuple[x509.CertificateRevocationList, ...]:
        version = file_version(self._path)
        if version is None or version == self._seen:
            return self._crls
        self._seen = version
        try:
            self._crls = _load_crls(self._path)
        except (OSError, ValueError) as exc:
            log.error("CRL %s could not be loaded for signatures (%s); still using the previous "
                      "list", self._path, exc)
        return self._crls
