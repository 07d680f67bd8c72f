"""`crowdflex certs` end to end: the development PKI (devpki) behind the command line."""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from cbp.cli import main
from devpki import CertificateAuthority
from schemas.identity import fingerprint_from_pem

CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
E = TypeVar("E", bound=x509.ExtensionType)
_LINE = re.compile(r"^(?P<name>\S+)\s+(?P<fingerprint>[0-9A-F:]{29})\s+(?P<path>\S+)$")


def _extension(certificate: x509.Certificate, kind: type[E]) -> E:
    return certificate.extensions.get_extension_for_class(kind).value


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _printed(output: str) -> dict[str, tuple[str, Path]]:
    rows = (_LINE.match(line) for line in output.splitlines())
    return {row["name"]: (row["fingerprint"], Path(row["path"])) for row in rows if row}


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_cli_init_writes_a_pki_that_chains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "dev"
    assert main(["certs", "init", "--dir", str(directory)]) == 0
    printed = _printed(capsys.readouterr().out)
    assert set(printed) == {"ca", "vtn", "ven"}
    ca = _load(directory / "ca.pem")
    for name in ("vtn", "ven"):
        leaf_path = directory / f"{name}.pem"
        _load(leaf_path).verify_directly_issued_by(ca)
        assert printed[name] == (fingerprint_from_pem(leaf_path.read_bytes()), leaf_path)
    for name in ("ca", "vtn", "ven"):
        assert _mode(directory / f"{name}.key") == 0o600
    assert CertificateAuthority.load(directory / "ca.pem", directory / "ca.key").fingerprint == (
        printed["ca"][0]
    )


def test_cli_init_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certs", "init", "--dir", str(tmp_path)]) == 0
    before = (tmp_path / "ca.key").read_bytes()
    capsys.readouterr()
    assert main(["certs", "init", "--dir", str(tmp_path)]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (tmp_path / "ca.key").read_bytes() == before
    assert main(["certs", "init", "--dir", str(tmp_path), "--force", "--key-type", "rsa"]) == 0
    assert (tmp_path / "ca.key").read_bytes() != before
    assert _mode(tmp_path / "ca.key") == 0o600
    assert isinstance(_load(tmp_path / "ven.pem").public_key(), rsa.RSAPublicKey)


def test_cli_issue_mints_from_the_existing_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certs", "init", "--dir", str(tmp_path)]) == 0
    capsys.readouterr()
    argv = ["certs", "issue", "--dir", str(tmp_path), "--name", "device-7"]
    assert main([*argv, "--key-type", "rsa"]) == 0
    fingerprint, cert_path = _printed(capsys.readouterr().out)["device-7"]
    leaf = _load(cert_path)
    leaf.verify_directly_issued_by(_load(tmp_path / "ca.pem"))
    assert fingerprint == fingerprint_from_pem(cert_path.read_bytes())
    assert tuple(_extension(leaf, x509.ExtendedKeyUsage)) == (CLIENT_AUTH,)
    assert _mode(tmp_path / "device-7.key") == 0o600
    assert main(argv) == 1  # exists: refused without --force
    assert main([*argv, "--force", "--role", "vtn", "--host", "vtn.example"]) == 0
    names = _extension(_load(cert_path), x509.SubjectAlternativeName)
    assert names.get_values_for_type(x509.DNSName) == ["vtn.example"]


@pytest.mark.parametrize("name", ["ca", "../escape", "a/b", ".hidden", ""])
def test_cli_issue_refuses_unusable_names(tmp_path: Path, name: str) -> None:
    assert main(["certs", "init", "--dir", str(tmp_path)]) == 0
    assert main(["certs", "issue", "--dir", str(tmp_path), "--name", name]) == 2


def test_cli_issue_needs_a_ca(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "issue", "--dir", str(tmp_path), "--name", "ven-1"]) == 1
    assert "certs init" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_help_explains_each_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["certs", "issue", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--dir", "--name", "--role", "--key-type", "--host", "--force"):
        assert option in text
