"""Coverage-guided fuzzing of schemas.decode with atheris (libFuzzer), for long runs by hand.

    pip install -e '.[fuzz]'
    python tests/fuzz/atheris_decode.py -max_total_time=600 [CORPUS_DIR ...]

Not part of the pytest suite (no ``test_`` prefix; atheris is only in the ``fuzz`` extra). Without
a corpus directory the run starts from a temporary copy of the bundled valid conformance corpus.
The contract checked is the one in tests/fuzz/contract.py: a typed message that round-trips, or a
RemoteProtocolError with a 450..469 code. Anything else is a crash libFuzzer reports and saves.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]


def _seed_directory() -> str:
    from schemas.conformance import corpus_dir

    target = Path(tempfile.mkdtemp(prefix="crowdflex-fuzz-"))
    for path in sorted((corpus_dir() / "valid").glob("*.xml")):
        shutil.copy(path, target / path.name)
    return str(target)


def main() -> None:
    try:
        import atheris
    except ImportError:
        sys.exit("atheris is not installed: pip install -e '.[fuzz]'")
    sys.path.insert(0, str(_ROOT))
    with atheris.instrument_imports():
        import schemas
    codec = schemas.Codec()

    def test_one_input(data: bytes) -> None:
        try:
            message = codec.decode(data)
        except schemas.RemoteProtocolError as exc:
            if not 450 <= exc.response_code <= 469:
                raise AssertionError(f"response code {exc.response_code} outside 450..469") from exc
            return
        if codec.decode(codec.encode(message)) != message:
            raise AssertionError(f"round trip changed the message: {message!r}")

    argv = list(sys.argv)
    if not any(not arg.startswith("-") for arg in argv[1:]):
        argv.append(_seed_directory())
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
