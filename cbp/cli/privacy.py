"""`crowdflex privacy`: erase a prosumer, audit a run's TSO-bound messages, write the data-flow
report, make a master key file.

Keys come from ``--key-file`` or the environment variable named by ``--key-env`` (default
``CROWDFLEX_PSEUDONYM_KEYS``), never from code. ``keygen`` makes the key file's missing parent
folders readable by their owner only (mode 0700), as the file itself (0600). Exit codes: 0
done/clean, 1 leak found, 2 the command could not run (missing key, vault, config or captures).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import privacy
from privacy.keys import new_key_line


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


def _erase(args: argparse.Namespace) -> int:
    if not args.vault.is_file():
        print(f"crowdflex privacy: no vault at {args.vault}", file=sys.stderr)
        return 2
    config = privacy.load_config(args.config)
    with privacy.IdentityVault(args.vault, _keys(args)) as vault:
        raw = privacy.SqliteRawDataStore(args.raw_store) if args.raw_store else None
        try:
            notices = privacy.erase_prosumer(
                vault, args.prosumer, config, now=datetime.now(UTC),
                requested_by=f"cli:{os.environ.get('USER', 'unknown')}", raw_store=raw,
            )  # fmt: skip
        finally:
            if raw is not None:
                raw.close()
    for path in privacy.write_notices(notices, args.notice_dir):
        print(f"notice written: {path}")
    print(f"prosumer {args.prosumer} erased; their past pseudonyms can no longer be recomputed")
    return 0


def _audit(args: argparse.Namespace) -> int:
    values: tuple[privacy.IdentityValue, ...] = ()
    if args.vault is not None:
        if not args.vault.is_file():
            print(f"crowdflex privacy: no vault at {args.vault}", file=sys.stderr)
            return 2
        with privacy.IdentityVault(args.vault, _keys(args)) as vault:
            values = vault.identity_values()
    result = privacy.audit_run(args.run_dir, values)
    print(result.summary())
    if not result.files:
        return 2
    return 0 if result.passed else 1


def _report(args: argparse.Namespace) -> int:
    config = privacy.load_config(args.config)
    for path in privacy.write_report(config, args.out):
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


def _guarded(run: Any) -> Any:
    def wrapper(args: argparse.Namespace) -> int:
        try:
            result: int = run(args)
        except privacy.PrivacyError as exc:
            print(f"crowdflex privacy: {exc}", file=sys.stderr)
            return 2
        return result

    return wrapper


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "privacy", help="erasure, privacy audit, data-flow report, master keys",
        description="The aggregator's privacy tools: erase a prosumer, audit what reached the "
        "TSO, write the data-flow report, make master keys. Exit codes: 0 done or clean, 1 a "
        "leak was found, 2 the command could not run.")
    sub = parser.add_subparsers(dest="privacy_command", required=True, metavar="ACTION")

    erase = sub.add_parser("erase", help="erase a prosumer (crypto-shredding) and write notices")
    erase.add_argument("--vault", type=Path, required=True, metavar="FILE",
                       help="the aggregator's identity vault (e.g. state/vault.db)")
    erase.add_argument("--prosumer", required=True, help="prosumer id in the vault")
    erase.add_argument("--notice-dir", type=Path, default=Path("."), metavar="DIR",
                       help="where the erasure notices (one per recipient) are written "
                       "(default: the working directory)")
    erase.add_argument("--config", type=Path, metavar="FILE",
                       help="TOML file with a [privacy] table (default: the built-in settings)")
    erase.add_argument("--raw-store", type=Path, metavar="FILE",
                       help="raw sample store (SQLite) to erase the prosumer's samples from too")
    _key_options(erase)
    erase.set_defaults(run=_guarded(_erase))

    audit = sub.add_parser("audit", help="prove no vault value reached the TSO in a run")
    audit.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                       help="folder holding captures/aggregator-tso/ (a demo run folder, or a "
                       "node's state directory)")
    audit.add_argument("--vault", type=Path, metavar="FILE",
                       help="identity vault whose names, postcodes, EANs and serials must not "
                       "appear (needs its key: --key-file or --key-env); without it only the "
                       "pattern checks run")
    _key_options(audit)
    audit.set_defaults(run=_guarded(_audit))

    report = sub.add_parser("report", help="write the data-flow report (Markdown and HTML)")
    report.add_argument("--config", type=Path, metavar="FILE",
                        help="TOML file with a [privacy] table (default: the built-in settings)")
    report.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="folder the report files are written to")
    report.set_defaults(run=_guarded(_report))

    keygen = sub.add_parser("keygen", help="append a new master key version to a key file")
    keygen.add_argument("--key-file", type=Path, required=True, metavar="FILE",
                        help="key file to create or extend (mode 0600; missing parent folders "
                        "are made with mode 0700)")
    keygen.set_defaults(run=_guarded(_keygen))
