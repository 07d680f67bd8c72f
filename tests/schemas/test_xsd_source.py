"""The normative XSD set comes from the installed openleadr distribution's files, found through
its metadata: loading it imports neither openleadr nor signxml, so no deprecation warning of
theirs reaches a crowdflex user."""

from __future__ import annotations

import subprocess
import sys

from schemas import SchemaSet, bundled_schema_dir

_PROBE = """
import sys, warnings
warnings.simplefilter("error")
import schemas
schemas.SchemaSet()
schemas.decode(schemas.encode(schemas.Poll(ven_id="000123")))
leaked = sorted(m for m in sys.modules if m.partition(".")[0] in ("openleadr", "signxml"))
print(",".join(leaked))
"""


def test_the_schema_directory_holds_the_root_xsd_and_its_imports() -> None:
    directory = bundled_schema_dir()
    assert (directory / "oadr_20b.xsd").is_file()
    assert len(list(directory.glob("*.xsd"))) >= 16  # oadr_20b.xsd and its 15 imports
    assert SchemaSet(directory).directory == directory


def test_loading_the_schemas_imports_no_openleadr_and_warns_nothing() -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.strip() == ""  # no openleadr or signxml module was imported
