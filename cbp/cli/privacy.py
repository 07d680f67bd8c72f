"""`crowdflex privacy`: erase a prosumer, audit a run's TSO-bound messages, write the data-flow
report, make a master key file.

Keys come from ``--key-file`` or the environment variable named by ``--key-env`` (default
``CROWDFLEX_PSEUDONYM_KEYS``), never from code. Exit codes: 0 done/clean, 1 leak found, 2 the
command could not run (missing key, vault, config or captures).
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
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
    parser.add_argument("--key-file", type=Path, help="master key file (version:hex per line)")
    parser.add_argument("--key-env", default=privacy.DEFAULT_KEY_ENV, help="key variable name")


def _erase(args: argparse.Namespace) -> int:
    if not args.vault.is_file():
        print(f"no vault at {args.vault}", file=sys.stderr)
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
            print(f"no vault at {args.vault}", file=sys.stderr)
            return 2
        with privacy.IdentityVault(args.vault, _keys(args)) as vault:
            values = vault.identity_values()
    result = privacy.audit_run(args.run_dir, values)
    print(result.summary())
    if not result.files:
        return 2
    return 0 if result.passed else 1


def _merged(paths: list[Path]) -> dict[str, Any]:
    """The nodes' TOML files as one document: their [privacy] and [profile] tables joined key by
    key; a key two files set differently is refused (the report would describe one wrongly)."""
    merged: dict[str, dict[str, Any]] = {"privacy": {}, "profile": {}}
    for path in paths:
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise privacy.PrivacyConfigError(f"cannot read config {path}: {exc}") from None
        for name, joined in merged.items():
            table = document.get(name, {})
            if not isinstance(table, dict):
                raise privacy.PrivacyConfigError(f"{path}: [{name}] must be a table")
            for key, value in table.items():
                if joined.setdefault(key, value) != value:
                    raise privacy.PrivacyConfigError(
                        f"{path}: [{name}] {key} = {value!r} differs from another config's"
                        f" {joined[key]!r}")
    return merged


def _report(args: argparse.Namespace) -> int:
    from cbp.roles.profile import metering_scope, settings_from_mapping

    document = _merged(args.config)
    config = privacy.config_from_document(document)
    try:
        settings = settings_from_mapping(document.get("profile", {}))
    except ValueError as exc:
        raise privacy.PrivacyConfigError(str(exc)) from None
    for path in privacy.write_report(config, args.out, metering_scope(settings)):
        print(f"written: {path}")
    return 0


def _keygen(args: argparse.Namespace) -> int:
    path: Path = args.key_file
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
        "privacy", help="erasure, privacy audit, privacy report, master keys"
    )
    sub = parser.add_subparsers(dest="privacy_command", required=True, metavar="ACTION")

    erase = sub.add_parser("erase", help="erase a prosumer (crypto-shredding) and write notices")
    erase.add_argument("--vault", type=Path, required=True)
    erase.add_argument("--prosumer", required=True, help="prosumer id in the vault")
    erase.add_argument("--notice-dir", type=Path, default=Path("."))
    erase.add_argument("--config", type=Path, help="TOML file with a [privacy] table")
    erase.add_argument("--raw-store", type=Path, help="raw sample store to erase from as well")
    _key_options(erase)
    erase.set_defaults(run=_guarded(_erase))

    audit = sub.add_parser("audit", help="prove no vault value reached the TSO in a run")
    audit.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    audit.add_argument("--vault", type=Path)
    _key_options(audit)
    audit.set_defaults(run=_guarded(_audit))

    report = sub.add_parser(
        "report", help="write the privacy report (Markdown and HTML) from the nodes' settings")
    report.add_argument("--config", type=Path, action="append", default=[], metavar="TOML",
                        help="a node's TOML (its [privacy] and [profile] tables); give the TSO's"
                        " and the aggregator's, each once; none: the defaults")
    report.add_argument("--out", type=Path, required=True)
    report.set_defaults(run=_guarded(_report))

    keygen = sub.add_parser("keygen", help="append a new master key version to a key file")
    keygen.add_argument("--key-file", type=Path, required=True)
    keygen.set_defaults(run=_guarded(_keygen))
