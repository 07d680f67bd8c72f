"""`crowdflex privacy`: erase a prosumer, list erasure notices, answer a data subject's access
request, record a withdrawal of consent, audit a run's TSO-bound messages, verify the vault's
audit log, re-wrap keys, write the DPIA, make a master key file.

Keys come from ``--key-file`` or the environment variable named by ``--key-env`` (default
``CROWDFLEX_PSEUDONYM_KEYS``), never from code. ``keygen`` makes the key file's missing parent
folders readable by their owner only (mode 0700), as the file itself (0600). Exit codes: 0
done/clean, 1 leak found or audit log broken, 2 the command could not run (missing key, vault,
config or captures; an audit told neither ``--vault`` nor ``--no-vault``).

``erase`` works on the vault file a running aggregator node also has open: it computes every
pseudonym the prosumer was ever issued into pending notices, destroys the prosumer's data key and
rows, and leaves delivery to the node (:mod:`cbp.roles.erasure`), which sends the TSO's notice at
its next sample tick and records the TSO's acknowledgement; ``erasures`` shows where each stands.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import privacy
from privacy.keys import new_key_line
from tomlconfig import Table, document

from . import SubCommands
from ._onboard import read_devices

_Run = Callable[[argparse.Namespace], int]  # a sub-command's body: its arguments -> exit code


def _keys(args: argparse.Namespace) -> privacy.KeyProvider:
    if args.key_file is not None:
        return privacy.FileKeyProvider(args.key_file)
    return privacy.EnvKeyProvider(args.key_env)


def _key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key-file", type=Path, metavar="FILE",
                        help="master key file, one version:hex line per key (as `crowdflex "
                        "privacy keygen` writes it); without it the keys come from --key-env")
    parser.add_argument("--key-env", default=privacy.DEFAULT_KEY_ENV, metavar="NAME",
                        help="environment variable holding the master keys when no --key-file "
                        "is given (default: %(default)s)")
    parser.add_argument("--keyring", type=Path, metavar="FILE",
                        help="the vault's keyring file (default: VAULT.keyring beside it)")


def _who() -> str:
    return f"cli:{os.environ.get('USER', 'unknown')}"


def _open_vault(args: argparse.Namespace) -> privacy.IdentityVault | None:
    if not args.vault.is_file():
        print(f"crowdflex privacy: no vault at {args.vault}", file=sys.stderr)
        return None
    return privacy.IdentityVault(args.vault, _keys(args), keyring=args.keyring)


def _erase(args: argparse.Namespace) -> int:
    config = privacy.load_config(args.config)
    vault = _open_vault(args)
    if vault is None:
        return 2
    keyring = vault.keyring_path
    with vault:
        raw = privacy.SqliteRawDataStore(args.raw_store) if args.raw_store else None
        try:
            pending = privacy.erase_prosumer(vault, args.prosumer, config, requested_by=_who(),
                                             reason=args.reason, raw_store=raw)
        finally:
            if raw is not None:
                raw.close()
    for item in pending:
        notice = item.notice
        print(f"notice {notice.notice_id} to {notice.recipient}: "
              f"{len(notice.all_pseudonyms())} pseudonym(s), months {notice.months[0]}.."
              f"{notice.months[-1]}; pending until the recipient acknowledges")
    print(f"prosumer {args.prosumer} erased: data key destroyed, their pseudonyms can no longer "
          "be recomputed; the running aggregator delivers the TSO's notice")
    print(f"any copy of the keyring {keyring} taken before now still holds the destroyed key: "
          "with the master key and a vault copy it gives the household back; destroy such "
          "copies (keep the keyring out of data backups)")
    return 0


def _erasures(args: argparse.Namespace) -> int:
    vault = _open_vault(args)
    if vault is None:
        return 2
    with vault:
        for record in vault.erasure.notices():
            state = (f"acknowledged {record.acknowledged_at.isoformat()}"
                     if record.acknowledged_at else "pending")
            print(f"{record.notice_id} {record.recipient} issued {record.issued_at.isoformat()} "
                  f"{record.pseudonyms} pseudonym(s): {state}")
    return 0


def _access(args: argparse.Namespace) -> int:
    config = privacy.load_config(args.config)
    vault = _open_vault(args)
    if vault is None:
        return 2
    with vault:
        found = privacy.subject_access(vault, args.prosumer, config, requested_by=_who(),
                                       reason=args.reason)
    p = found.prosumer
    print(f"prosumer {p.prosumer_id}: name {p.name}, postcode {p.postcode}, EAN {p.ean}, "
          f"contract {p.contract_id}")
    for c in found.consents:
        state = f"withdrawn {c.withdrawn_at.isoformat()}" if c.withdrawn_at else "live"
        print(f"consent {c.purpose}: given {c.granted_at.isoformat()}, {state}")
    for d in found.devices:
        print(f"device {d.device_uuid}: serial {d.serial}, {d.device_class}, {d.rated_kw} kW, "
              f"zone {d.zone}")
    for held in found.held_by:
        print(f"{held.recipient} holds no identity; it may hold data under these pseudonyms "
              f"(months {held.months[0]}..{held.months[-1]}):")
        for purpose, names in held.pseudonyms:
            for name in names:
                print(f"  {purpose} {name}")
    print("the aggregator's raw samples and device events are kept under each device's "
          "certificate fingerprint (the devices file names it)")
    return 0


def _withdraw(args: argparse.Namespace) -> int:
    vault = _open_vault(args)
    if vault is None:
        return 2
    with vault:
        count = vault.consents.withdraw(args.prosumer, args.purpose)
    if not count:
        print(f"prosumer {args.prosumer} has no live consent for {args.purpose!r}: nothing "
              "withdrawn", file=sys.stderr)
        return 2
    print(f"consent of prosumer {args.prosumer} for {args.purpose!r} withdrawn; it takes "
          "effect at the next consent check")
    return 0


def _device_values(path: Path) -> tuple[privacy.IdentityValue, ...]:
    """Certificate fingerprints and prosumer ids from the aggregator's devices file."""
    values: dict[tuple[str, str], None] = {}
    for row in read_devices(path):
        values[("fingerprint", row["ven_id"])] = None
        values[("prosumer_id", row["prosumer_id"])] = None
    return tuple(privacy.IdentityValue(kind=k, value=v) for k, v in values)


def _audit(args: argparse.Namespace) -> int:
    if args.vault is None and not args.no_vault:
        print("privacy audit: give --vault FILE (the vault's values are what is searched "
              "for), or --no-vault to check shapes and the devices file only", file=sys.stderr)
        return 2
    values: tuple[privacy.IdentityValue, ...] = ()
    if args.vault is not None:
        vault = _open_vault(args)
        if vault is None:
            return 2
        with vault:
            values = vault.identity_values(requested_by=_who(), reason="privacy audit of a run")
    if args.devices is not None:
        values += _device_values(args.devices)
    result = privacy.audit_run(args.run_dir, values)
    print(result.summary())
    if not result.files:
        return 2
    return 0 if result.passed else 1


def _joined(paths: list[Path]) -> Table:
    """The nodes' TOML files as one document: their [privacy] and [profile] tables joined key by
    key; a key two files set differently is refused (the DPIA would describe one wrongly)."""
    merged: dict[str, dict[str, Any]] = {"privacy": {}, "profile": {}}
    for path in paths:
        node = document(path)
        for name, joined in merged.items():
            for key, value in node.mapping(name).items():
                if joined.setdefault(key, value) != value:
                    raise privacy.PrivacyConfigError(
                        f"{path}: [{name}] {key} = {value!r} differs from another config's"
                        f" {joined[key]!r}")
    return Table(merged, source=" + ".join(map(str, paths)), base=Path.cwd())


def _verify_log(args: argparse.Namespace) -> int:
    vault = _open_vault(args)
    if vault is None:
        return 2
    with vault:
        check = vault.audit.verify()
    print(f"audit log of {args.vault}: {check.entries} entries checked, head {check.head}")
    if check.intact:
        print("OK: every entry chains to the one before")
        return 0
    print(f"BROKEN at entry {check.first_broken}: {check.problem}")
    return 1


def _rotate(args: argparse.Namespace) -> int:
    vault = _open_vault(args)
    if vault is None:
        return 2
    with vault:
        count = vault.rotate(requested_by=_who(), reason=args.reason)
    print(f"{count} data key(s) re-wrapped under the newest master key; pseudonyms switch to it "
          "at the next month. A running aggregator node reads its key file once: it must have "
          "been restarted after keygen, before this rotation")
    return 0


def _dpia(args: argparse.Namespace) -> int:
    from cbp.roles.profile import metering_scope, settings_from_table

    joined = _joined(args.config)
    config = privacy.config_from_table(joined.table("privacy"))
    settings = settings_from_table(joined.table("profile"))
    joined.finish()
    for path in privacy.write_dpia(config, args.out, metering_scope(settings)):
        print(f"written: {path}")
    return 0


def _keygen(args: argparse.Namespace) -> int:
    path: Path = args.key_file
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    existing = path.read_text(encoding="ascii") if path.exists() else ""
    versions = privacy.FileKeyProvider(path).versions() if existing.strip() else ()
    version = max(versions, default=0) + 1
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="ascii") as out:
        out.write(new_key_line(version))
    print(f"key version {version} added to {path} (keep this file out of the repository)")
    return 0


def _guarded(run: _Run) -> _Run:
    def wrapper(args: argparse.Namespace) -> int:
        try:
            result: int = run(args)
        except (privacy.PrivacyError, ValueError) as exc:
            print(f"crowdflex privacy: {exc}", file=sys.stderr)
            return 2
        return result

    return wrapper


def _vault_command(sub: SubCommands, name: str, help_text: str, run: _Run
                   ) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
    parser.add_argument("--vault", type=Path, required=True, metavar="FILE",
                        help="the aggregator's identity vault (e.g. state/vault.db)")
    _key_options(parser)
    parser.set_defaults(run=_guarded(run))
    return parser


def register(commands: SubCommands) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "privacy", help="erasure, privacy audit, audit log, DPIA, master keys",
        description="The aggregator's privacy tools: erase a prosumer and follow its notices, "
        "audit what reached the TSO, verify the vault's audit log, re-wrap keys, write the "
        "DPIA, make master keys. Exit codes: 0 done or clean, 1 a leak was found or "
        "the audit log is broken, 2 the command could not run.")
    sub = parser.add_subparsers(dest="privacy_command", required=True, metavar="ACTION")

    erase = _vault_command(sub, "erase", "erase a prosumer (crypto-shredding) and queue one "
                           "notice per recipient for the running aggregator to deliver", _erase)
    erase.add_argument("--prosumer", required=True, help="prosumer id in the vault")
    erase.add_argument("--reason", required=True,
                       help="why, for the audit log (e.g. the request's case number)")
    erase.add_argument("--config", type=Path, metavar="FILE",
                       help="TOML file with a [privacy] table (default: the built-in settings)")
    erase.add_argument("--raw-store", type=Path, metavar="FILE",
                       help="raw sample store (SQLite) to erase the prosumer's samples from too")

    _vault_command(sub, "erasures", "list erasure notices: pending or acknowledged", _erasures)

    withdraw = _vault_command(sub, "withdraw", "record a prosumer's withdrawal of consent for "
                              "a purpose (effective at the next consent check)", _withdraw)
    withdraw.add_argument("--prosumer", required=True, help="prosumer id in the vault")
    withdraw.add_argument("--purpose", required=True, help="e.g. balancing-validation")

    access = _vault_command(sub, "access", "a data subject's access request: what the vault "
                            "holds on a prosumer and, per recipient, every pseudonym it may hold "
                            "their data under (audited)", _access)
    access.add_argument("--prosumer", required=True, help="prosumer id in the vault")
    access.add_argument("--reason", required=True, help="why (e.g. the request's case number)")
    access.add_argument("--config", type=Path, help="TOML file with a [privacy] table")

    _vault_command(sub, "verify-log", "check the vault's hash-chained audit log and name the "
                   "first broken entry", _verify_log)

    rotate = _vault_command(sub, "rotate", "re-wrap every data key under the newest master "
                            "key version (after keygen)", _rotate)
    rotate.add_argument("--reason", required=True, help="why, for the audit log")

    audit = sub.add_parser("audit", help="prove no vault value reached the TSO in a run")
    audit.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                       help="folder holding captures/aggregator-tso/ (a demo run folder, or a "
                       "node's state directory)")
    source = audit.add_mutually_exclusive_group()
    source.add_argument("--vault", type=Path, metavar="FILE",
                        help="identity vault whose names, postcodes, EANs, serials and prosumer "
                        "ids must not appear (needs its key: --key-file or --key-env)")
    source.add_argument("--no-vault", action="store_true",
                        help="audit without the vault's values (shapes and --devices only)")
    audit.add_argument("--devices", type=Path, metavar="CSV",
                       help="the aggregator's devices file: its certificate fingerprints and "
                       "prosumer ids are searched for too")
    _key_options(audit)
    audit.set_defaults(run=_guarded(_audit))

    dpia = sub.add_parser(
        "dpia", help="write the DPIA (Markdown and HTML) from the nodes' settings")
    dpia.add_argument("--config", type=Path, action="append", default=[], metavar="TOML",
                      help="a node's TOML (its [privacy] and [profile] tables); give the TSO's"
                      " and the aggregator's, each once; none: the defaults")
    dpia.add_argument("--out", type=Path, required=True, metavar="DIR",
                      help="folder the DPIA's files are written to")
    dpia.set_defaults(run=_guarded(_dpia))

    keygen = sub.add_parser("keygen", help="append a new master key version to a key file")
    keygen.add_argument("--key-file", type=Path, required=True, metavar="FILE",
                        help="key file to create or extend (mode 0600; missing parent folders "
                        "are made with mode 0700)")
    keygen.set_defaults(run=_guarded(_keygen))
