"""`crowdflex certs`: make a development PKI and mint VTN/VEN certificates from it.

``init`` writes a CA and one VTN and one VEN certificate; ``issue`` mints more from that CA. Both
print each certificate's OpenADR fingerprint (the VEN's is what a VTN registers as its identity).
Neither replaces an existing key without ``--force``: a key silently overwritten orphans every
certificate and registration built on it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, Final

from cbp.pki import CertificateAuthority, KeyType, Role

__all__ = ["register"]

_DEFAULT_DIR: Final = Path("certs/dev")
_INIT_NAMES: Final = ("ca", "vtn", "ven")
# A certificate name becomes a file name: keep it to one plain path component.
_SAFE_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "certs",
        help="development PKI: a CA and VTN/VEN certificates for mutual TLS",
        description="Create a development certificate authority and mint VTN and VEN "
        "certificates from it. Each command prints the OpenADR fingerprint of what it wrote. "
        "For production use certificates from the OpenADR Alliance PKI (see certs/README.md).",
    )
    actions = parser.add_subparsers(dest="certs_command", required=True, metavar="ACTION")

    init = actions.add_parser(
        "init",
        help="write a new CA plus one VTN and one VEN certificate",
        description="Write ca.pem/ca.key, vtn.pem/vtn.key and ven.pem/ven.key into DIR "
        "(keys readable by their owner only) and print each fingerprint.",
    )
    _add_dir(init, required=False)
    _add_key_type(init)
    init.add_argument(
        "--force",
        action="store_true",
        help="replace existing files in DIR (a new CA invalidates every certificate it signed)",
    )
    init.set_defaults(run=_run_init)

    issue = actions.add_parser(
        "issue",
        help="mint one more certificate from the CA in DIR",
        description="Write NAME.pem/NAME.key signed by DIR/ca.pem + DIR/ca.key and print the "
        "fingerprint; for a VEN this fingerprint is what the VTN registers.",
    )
    _add_dir(issue, required=True)
    issue.add_argument(
        "--name",
        required=True,
        help="certificate common name and file stem (letters, digits, '.', '_', '-')",
    )
    issue.add_argument(
        "--role",
        type=Role,
        choices=tuple(Role),
        default=Role.VEN,
        help="vtn: TLS server (and client, for push); ven: TLS client (default: %(default)s)",
    )
    _add_key_type(issue)
    issue.add_argument(
        "--host",
        action="append",
        dest="hosts",
        metavar="HOST",
        help="DNS name or IP address the certificate serves (repeatable); defaults to "
        "localhost, 127.0.0.1 and ::1 for a vtn, none for a ven (give some for a push receiver)",
    )
    issue.add_argument("--force", action="store_true", help="replace NAME.pem/NAME.key if present")
    issue.set_defaults(run=_run_issue)


def _add_dir(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--dir",
        type=Path,
        required=required,
        default=None if required else _DEFAULT_DIR,
        help="directory holding the PKI" + ("" if required else " (default: %(default)s)"),
    )


def _add_key_type(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key-type",
        type=KeyType,
        choices=tuple(KeyType),
        default=KeyType.EC,
        help="ec: P-256, fast, for ECDHE-ECDSA suites; rsa: 2048-bit, for the TLS 1.2 "
        "TLS_RSA_WITH_AES_128_CBC_SHA256 suite (default: %(default)s)",
    )


def _existing(directory: Path, names: tuple[str, ...]) -> tuple[Path, ...]:
    return tuple(
        path
        for name in names
        for path in (directory / f"{name}.pem", directory / f"{name}.key")
        if path.exists()
    )


def _refuse(paths: tuple[Path, ...]) -> int:
    listed = ", ".join(str(path) for path in paths)
    print(f"crowdflex certs: refusing to overwrite {listed} (use --force)", file=sys.stderr)
    return 1


def _report(name: str, fingerprint: str, cert_path: Path) -> None:
    print(f"{name:<8} {fingerprint}  {cert_path}")


def _run_init(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    if not args.force and (present := _existing(directory, _INIT_NAMES)):
        return _refuse(present)
    directory.mkdir(parents=True, exist_ok=True)
    authority = CertificateAuthority.create(key_type=args.key_type)
    ca_cert, _ = authority.write(directory, force=args.force)
    _report("ca", authority.fingerprint, ca_cert)
    for role in (Role.VTN, Role.VEN):
        issued = authority.issue(role.value, role, key_type=args.key_type)
        cert_path, _ = issued.write(directory, force=args.force)
        _report(issued.name, issued.fingerprint, cert_path)
    return 0


def _run_issue(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    name: str = args.name
    if _SAFE_NAME.fullmatch(name) is None or name == "ca":
        print(f"crowdflex certs: unusable certificate name {name!r}", file=sys.stderr)
        return 2
    ca_cert, ca_key = directory / "ca.pem", directory / "ca.key"
    if not (ca_cert.is_file() and ca_key.is_file()):
        print(
            f"crowdflex certs: no CA in {directory} (run `crowdflex certs init` first)",
            file=sys.stderr,
        )
        return 1
    if not args.force and (present := _existing(directory, (name,))):
        return _refuse(present)
    authority = CertificateAuthority.load(ca_cert, ca_key)
    issued = authority.issue(name, args.role, key_type=args.key_type, hosts=args.hosts)
    cert_path, _ = issued.write(directory, force=args.force)
    _report(issued.name, issued.fingerprint, cert_path)
    return 0
