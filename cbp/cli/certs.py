"""`crowdflex certs`: make a development PKI and mint VTN/VEN certificates from it.

``init`` writes a CA and one VTN and one VEN certificate; ``issue`` mints more from that CA;
``fleet`` mints the VEN certificates of N simulated devices (``device-00000`` ...) and, with
``--csv``, their onboarding records for ``crowdflex aggregator --onboard``. Each prints the OpenADR
fingerprint of what it wrote (the VEN's is what a VTN registers as its identity); ``fleet`` prints
a count instead of N lines. None replaces an existing key without ``--force``: a key silently
overwritten orphans every certificate and registration built on it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Final

from cbp.cli import SubCommands
from devpki import CertificateAuthority, KeyType, Role

__all__ = ["register"]

_DEFAULT_DIR: Final = Path("certs/dev")
_INIT_NAMES: Final = ("ca", "vtn", "ven")
# A certificate name becomes a file name: keep it to one plain path component.
_SAFE_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def register(commands: SubCommands) -> None:
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
    _add_dir(init)
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
    _add_dir(issue)
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

    fleet = actions.add_parser(
        "fleet",
        help="mint N device VEN certificates and, with --csv, their onboarding records",
        description="Write device-00000.pem/.key .. device-(N-1) signed by DIR/ca.pem + "
        "DIR/ca.key (the names `crowdflex device` reads with [fleet] count = N). With --csv, "
        "also write the onboarding CSV `crowdflex aggregator --onboard` imports: one made-up, "
        "consenting prosumer per device, each device's class and rating those of the simulator "
        "`crowdflex device` runs for it with the same seed.",
    )
    _add_dir(fleet)
    fleet.add_argument("--devices", type=int, required=True, metavar="N",
                       help="how many device certificates to mint")
    fleet.add_argument("--csv", type=Path, metavar="FILE",
                       help="also write their onboarding records here (CSV; delete it once "
                       "imported: it holds the made-up identities)")
    fleet.add_argument("--seed", type=int, default=1,
                       help="simulator seed, as [fleet] seed of the device config "
                       "(default: %(default)s)")
    _add_key_type(fleet)
    fleet.add_argument("--force", action="store_true",
                       help="replace device certificates already in DIR")
    fleet.set_defaults(run=_run_fleet)


def _add_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        type=Path,
        default=_DEFAULT_DIR,
        help="directory holding the PKI (default: %(default)s)",
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


def _authority(directory: Path) -> CertificateAuthority | None:
    """The CA in ``directory``; None (having said so) when there is none."""
    ca_cert, ca_key = directory / "ca.pem", directory / "ca.key"
    if not (ca_cert.is_file() and ca_key.is_file()):
        print(
            f"crowdflex certs: no CA in {directory} (run `crowdflex certs init` first)",
            file=sys.stderr,
        )
        return None
    return CertificateAuthority.load(ca_cert, ca_key)


def _run_issue(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    name: str = args.name
    if _SAFE_NAME.fullmatch(name) is None or name == "ca":
        print(f"crowdflex certs: unusable certificate name {name!r}", file=sys.stderr)
        return 2
    if (authority := _authority(directory)) is None:
        return 1
    if not args.force and (present := _existing(directory, (name,))):
        return _refuse(present)
    issued = authority.issue(name, args.role, key_type=args.key_type, hosts=args.hosts)
    cert_path, _ = issued.write(directory, force=args.force)
    _report(issued.name, issued.fingerprint, cert_path)
    return 0


def _run_fleet(args: argparse.Namespace) -> int:
    from ._onboard import write_sample_onboarding

    directory: Path = args.dir
    if args.devices < 1:
        print("crowdflex certs: --devices must be at least 1", file=sys.stderr)
        return 2
    names = tuple(f"device-{i:05d}" for i in range(args.devices))
    if (authority := _authority(directory)) is None:
        return 1
    if not args.force and (present := _existing(directory, names)):
        print(f"crowdflex certs: refusing to overwrite {len(present)} device file(s) in "
              f"{directory}, the first {present[0]} (use --force)", file=sys.stderr)
        return 1
    fingerprints = []
    for name in names:
        issued = authority.issue(name, Role.VEN, key_type=args.key_type)
        issued.write(directory, force=args.force)
        fingerprints.append(issued.fingerprint)
    print(f"{len(names)} device certificates {names[0]} .. {names[-1]} in {directory}")
    if args.csv is not None:
        write_sample_onboarding(args.csv, fingerprints, seed=args.seed)
        print(f"onboarding records of {len(names)} consenting prosumers in {args.csv}")
    return 0
