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
- No session tickets (TLS 1.3 or 1.2; every server context, :func:`schemas.tls.server_context`):
  a resumed session skips certificate verification, so a ticket minted before a revocation would
  outlive it. OpenSSL still resumes TLS 1.2 sessions from
  its server-side session-ID cache, which Python cannot switch off: the certificate of every
  resumed session is checked against the current list when it is admitted
  (:class:`vtn.connections.Connections`).
- Nothing is global: each watcher owns its contexts; several VTNs run side by side.

:class:`CrlFile` is the one reader of the CRL file outside OpenSSL: it gives the same file's
CRLs, on the same terms, to the XML-signature checks and to the VTN's own certificate checks
(:class:`vtn.certpath.CertificatePath`), both judged by the one revocation check,
:meth:`schemas.certpath.PathCheck.check_revocation`; so a signer or a proxied client is refused
for revocation exactly when a TLS client would be.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from schemas.identity import TlsProfile
from schemas.tls import server_context

__all__ = [
    "CrlFile", "FileVersion", "RevocationWatcher", "file_version", "load_crls",
    "reloading_server_context",
]

log = logging.getLogger(__name__)

FileVersion = tuple[int, int, int]
_CRL_BEGIN = b"-----BEGIN X509 CRL-----"
_CRL_END = b"-----END X509 CRL-----"


def file_version(path: Path) -> FileVersion | None:
    """What tells one version of a file from the next (mtime, size, inode), one ``stat``; None
    when it cannot be read."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


def load_crls(data: bytes) -> tuple[x509.CertificateRevocationList, ...]:
    """Every CRL in ``data`` (PEM, one or several, or a single DER list); ValueError when there
    is none."""
    if _CRL_BEGIN not in data:
        try:
            return (x509.load_der_x509_crl(data),)
        except ValueError as exc:
            raise ValueError(f"no PEM CRL in the file, nor a DER one ({exc})") from None
    blocks = [chunk.split(_CRL_END, 1)[0] for chunk in data.split(_CRL_BEGIN)[1:]]
    return tuple(x509.load_pem_x509_crl(_CRL_BEGIN + block + _CRL_END + b"\n")
                 for block in blocks)

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
        return server_context(cert=m.cert, key=m.key, ca=m.ca, profile=m.profile, crl=m.crl)

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


class CrlFile:
    """The CRLs in a file, taken into use again when the file changed.

    Like :class:`RevocationWatcher`: the first read must succeed; later, an unreadable or removed
    file keeps the last good lists, logged once per file version. ``lists`` are the lists in use;
    :meth:`refresh` re-reads a changed file (``generation`` counts the versions taken into use
    after the first); calling the object refreshes, then answers ``lists`` (the XML-signature
    checks ask so on every signature). Safe to call from any thread.
    """

    __slots__ = ("_path", "_seen", "generation", "lists")

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._seen = file_version(self._path)
        self.lists = load_crls(self._path.read_bytes())
        self.generation = 0

    def __call__(self) -> tuple[x509.CertificateRevocationList, ...]:
        self.refresh()
        return self.lists

    def refresh(self) -> bool:
        """Re-read the file if it changed; True when a new version was taken into use."""
        version = file_version(self._path)
        if version is None or version == self._seen:
            return False
        self._seen = version
        try:
            self.lists = load_crls(self._path.read_bytes())
        except (OSError, ValueError) as exc:
            log.error("CRL %s could not be loaded (%s); still using the previous list",
                      self._path, exc)
            return False
        self.generation += 1
        return True
