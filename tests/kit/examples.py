"""An example configuration from examples/ copied beside the certificate files it names."""

from __future__ import annotations

from pathlib import Path

__all__ = ["EXAMPLES", "example_in"]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example_in(root: Path, name: str, *, text: str | None = None) -> Path:
    """examples/``name`` (or ``text``) copied under ``root``, beside empty stand-ins for the
    certificate files a node named after its stem needs (``crowdflex certs init`` writes them
    into certs/dev): ``vtn.toml`` gets vtn.pem and vtn.key, ``ven.toml`` ven.pem and ven.key,
    both ca.pem."""
    node = Path(name).stem
    certs = root / "certs" / "dev"
    certs.mkdir(parents=True)
    for certificate in (f"{node}.pem", f"{node}.key", "ca.pem"):
        (certs / certificate).write_text("")
    path = root / "examples" / name
    path.parent.mkdir()
    path.write_text((EXAMPLES / name).read_text() if text is None else text)
    return path
