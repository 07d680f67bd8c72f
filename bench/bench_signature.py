"""Cost of signed messages: our lxml c14n + cryptography path against signxml, per oadrPoll.

Run: ``.venv/bin/python bench/bench_signature.py``. Prints figures and ratios; decides nothing.
The budget we aim for is < 2 ms to sign one message with RSA-2048. On a shared 2-core machine the
RSA private-key operation alone swings between 1 and 3 ms with load, so each line also prints the
raw key operation and the XML work around it (sign: c14n, digests, filling ds:Signature; verify:
reading ds:Signature, c14n, digests, the certificate chain memory), which is what we control.

signxml's sign figure includes loading the PEM key on every call (its API takes PEM bytes), which is
exactly the cost a :class:`schemas.Signer` pays once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.algorithms import SignatureConstructionMethod
from signxml.signer import XMLSigner
from signxml.verifier import XMLVerifier

import schemas

POLL = schemas.Poll(ven_id="000123")
OADR = "http://openadr.org/oadr-2.0b/2012/07"


def identity(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def per_call(fn: Callable[[], object], n: int, repeats: int = 5) -> float:
    """Best of ``repeats`` runs in ms per call: the machine is shared, the minimum is the signal."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n * 1e3)
    return best


def raw_verifier(signer: schemas.Signer, data: bytes) -> Callable[[], object]:
    """The bare public-key check of one signature over ``data`` (no XML around it)."""
    value = signer.sign(data)
    public = signer.certificate.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        return lambda: public.verify(value, data, padding.PKCS1v15(), hashes.SHA256())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    half = len(value) // 2
    der = encode_dss_signature(int.from_bytes(value[:half]), int.from_bytes(value[half:]))
    return lambda: public.verify(der, data, ec.ECDSA(hashes.SHA256()))


def bench_key(label: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, n: int) -> None:
    schema = schemas.SchemaSet()
    key_pem, cert_pem = identity(key)
    signer = schemas.Signer(key_pem, cert_pem)
    plain = schemas.Codec(schema=schema)
    signing = schemas.Codec(schema=schema, signer=signer)
    # Verification without the replay guard: re-decoding one wire copy would be a replay.
    verifying = schemas.Codec(schema=schema, verifier=schemas.Verifier(cert_pem))
    verifying.replay = None
    wire = signing.encode(POLL)

    base = per_call(lambda: plain.encode(POLL), n)
    raw = per_call(lambda: signer.sign(b"x" * 400), n)
    raw_verify = per_call(raw_verifier(signer, b"x" * 400), n)
    ours_sign = per_call(lambda: signing.encode(POLL), n)
    ours_verify = per_call(lambda: verifying.decode(wire), n)
    plain_decode = per_call(lambda: plain.decode(wire), n)

    body = etree.fromstring(plain.encode(POLL)).find(f"{{{OADR}}}oadrSignedObject")
    assert body is not None
    body.set(f"{{{OADR}}}Id", "oadrSignedObject")
    algorithm = "rsa-sha256" if isinstance(key, rsa.RSAPrivateKey) else "ecdsa-sha256"
    other = XMLSigner(method=SignatureConstructionMethod.detached, signature_algorithm=algorithm)
    other.namespaces["oadr"] = OADR
    cert_text = cert_pem.decode()
    sx_sign = per_call(
        lambda: other.sign(body, key=key_pem, cert=cert_text, reference_uri="#oadrSignedObject"),
        n // 5,
    )
    sx_verify = per_call(
        lambda: XMLVerifier().verify(wire, x509_cert=cert_pem.decode(), expect_references=2),
        n // 5,
    )
    print(
        f"{label} sign   {ours_sign:6.3f} ms (raw key op {raw:.3f}, XML work "
        f"{ours_sign - raw - base:.3f}, unsigned encode {base:.3f})   signxml {sx_sign:7.3f} ms"
        f"   ratio {sx_sign / ours_sign:4.1f}x"
    )
    print(
        f"{label} verify {ours_verify:6.3f} ms (raw key op {raw_verify:.3f}, XML work "
        f"{ours_verify - raw_verify - plain_decode:.3f}, decode without signature check "
        f"{plain_decode:.3f})   signxml {sx_verify:7.3f} ms   ratio {sx_verify / ours_verify:4.1f}x"
    )


def main() -> None:
    bench_key("RSA-2048", rsa.generate_private_key(public_exponent=65537, key_size=2048), 500)
    bench_key("EC P-256", ec.generate_private_key(ec.SECP256R1()), 500)


if __name__ == "__main__":
    main()
