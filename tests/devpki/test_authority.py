"""The development PKI: certificate contents and key files."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from devpki import (
    CertificateAuthority,
    DevpkiError,
    KeyType,
    PkiFileExists,
    Role,
    UnsupportedCaKey,
    write_private_key,
)
from schemas.identity import FINGERPRINT_PATTERN, fingerprint_from_pem

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
E = TypeVar("E", bound=x509.ExtensionType)


def _extension(certificate: x509.Certificate, kind: type[E]) -> E:
    return certificate.extensions.get_extension_for_class(kind).value


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def authority() -> CertificateAuthority:
    return CertificateAuthority.create()


def test_ca_may_sign_certificates_and_nothing_else(authority: CertificateAuthority) -> None:
    ca = authority.certificate
    constraints = _extension(ca, x509.BasicConstraints)
    usage = _extension(ca, x509.KeyUsage)
    assert (constraints.ca, constraints.path_length) == (True, 0)
    assert (usage.key_cert_sign, usage.crl_sign, usage.digital_signature) == (True, True, False)
    assert isinstance(authority.private_key, ec.EllipticCurvePrivateKey)
    assert authority.private_key.curve.name == "secp256r1"


def test_vtn_certificate_serves_loopback_and_may_push(authority: CertificateAuthority) -> None:
    issued = authority.issue("vtn", Role.VTN)
    certificate = issued.certificate
    authority.verify(certificate)
    assert tuple(_extension(certificate, x509.ExtendedKeyUsage)) == (SERVER_AUTH, CLIENT_AUTH)
    names = _extension(certificate, x509.SubjectAlternativeName)
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert _extension(certificate, x509.BasicConstraints).ca is False
    assert certificate.signature_hash_algorithm is not None
    assert certificate.signature_hash_algorithm.name == "sha256"


def test_ven_certificate_is_a_client_only_unless_given_hosts(
    authority: CertificateAuthority,
) -> None:
    plain = authority.issue("ven-1").certificate
    assert tuple(_extension(plain, x509.ExtendedKeyUsage)) == (CLIENT_AUTH,)
    with pytest.raises(x509.ExtensionNotFound):
        plain.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    receiver = authority.issue("ven-push", Role.VEN, hosts=("ven.example", "10.0.0.7")).certificate
    assert tuple(_extension(receiver, x509.ExtendedKeyUsage)) == (SERVER_AUTH, CLIENT_AUTH)
    names = _extension(receiver, x509.SubjectAlternativeName)
    assert names.get_values_for_type(x509.DNSName) == ["ven.example"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.7")]


def test_rsa_leaf_allows_key_encipherment_for_the_rsa_suite(
    authority: CertificateAuthority,
) -> None:
    issued = authority.issue("vtn-rsa", Role.VTN, key_type=KeyType.RSA)
    assert isinstance(issued.private_key, rsa.RSAPrivateKey)
    assert issued.private_key.key_size == 2048
    assert _extension(issued.certificate, x509.KeyUsage).key_encipherment is True
    ec_leaf = authority.issue("ven-ec").certificate
    assert _extension(ec_leaf, x509.KeyUsage).key_encipherment is False
    authority.verify(issued.certificate)


def test_certificates_from_another_ca_do_not_verify(authority: CertificateAuthority) -> None:
    stranger = CertificateAuthority.create(common_name="stranger")
    with pytest.raises((InvalidSignature, ValueError)):
        authority.verify(stranger.issue("ven-x").certificate)


def test_bulk_issue_gives_distinct_identities(authority: CertificateAuthority) -> None:
    issued = [authority.issue(f"device-{index}") for index in range(200)]
    fingerprints = {each.fingerprint for each in issued}
    assert len(fingerprints) == 200
    assert len({each.certificate.serial_number for each in issued}) == 200
    assert all(FINGERPRINT_PATTERN.fullmatch(fingerprint) for fingerprint in fingerprints)
    assert all(fingerprint_from_pem(each.cert_pem) == each.fingerprint for each in issued[:5])


def test_written_ca_loads_and_keeps_signing(tmp_path: Path) -> None:
    original = CertificateAuthority.create()
    cert_path, key_path = original.write(tmp_path)
    loaded = CertificateAuthority.load(cert_path, key_path)
    assert loaded.fingerprint == original.fingerprint
    original.verify(loaded.issue("ven-2").certificate)


def test_revocation_list_names_the_revoked_serials(authority: CertificateAuthority) -> None:
    revoked, kept = authority.issue("gone"), authority.issue("kept")
    crl = x509.load_pem_x509_crl(authority.revocation_list((revoked.certificate,)))
    assert crl.is_signature_valid(authority.certificate.public_key())  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(revoked.certificate.serial_number)
    assert crl.get_revoked_certificate_by_serial_number(kept.certificate.serial_number) is None


def test_private_keys_are_0600_and_never_silently_replaced(tmp_path: Path) -> None:
    path = tmp_path / "a.key"
    write_private_key(path, b"first")
    assert _mode(path) == 0o600
    with pytest.raises(PkiFileExists) as refused:
        write_private_key(path, b"second")
    assert isinstance(refused.value, FileExistsError)  # older except clauses still catch it
    assert path.read_bytes() == b"first"
    path.chmod(0o644)
    write_private_key(path, b"third", force=True)
    assert (path.read_bytes(), _mode(path)) == (b"third", 0o600)


def test_written_files_are_not_replaced_unless_forced(
    authority: CertificateAuthority, tmp_path: Path
) -> None:
    ca_cert, _ = authority.write(tmp_path)
    leaf_cert, _ = authority.issue("ven-1").write(tmp_path)
    kept = ca_cert.read_bytes(), leaf_cert.read_bytes()
    with pytest.raises(PkiFileExists, match=r"ca\.pem exists"):
        CertificateAuthority.create().write(tmp_path)
    with pytest.raises(PkiFileExists, match=r"ven-1\.pem exists"):
        authority.issue("ven-1").write(tmp_path)
    assert (ca_cert.read_bytes(), leaf_cert.read_bytes()) == kept
    authority.issue("ven-1").write(tmp_path, force=True)
    assert leaf_cert.read_bytes() != kept[1]


def test_a_ca_key_neither_ec_nor_rsa_is_refused_by_name(
    authority: CertificateAuthority, tmp_path: Path
) -> None:
    cert_path, key_path = authority.write(tmp_path)
    key_path.write_bytes(ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with pytest.raises(UnsupportedCaKey, match="not Ed25519PrivateKey") as refused:
        CertificateAuthority.load(cert_path, key_path)
    assert isinstance(refused.value, ValueError) and isinstance(refused.value, DevpkiError)
