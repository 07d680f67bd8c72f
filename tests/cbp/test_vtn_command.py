"""`crowdflex vtn` refuses what it cannot serve before anything starts."""

from __future__ import annotations

import pytest

from cbp.cli import main
from tests.kit.examples import example_in
from vtn.runtime import serving_loop_factory


def test_cli_refuses_admin_without_token_and_bad_files(tmp_path, capsys):
    path = tmp_path / "vtn.toml"
    path.write_text('vtn_id = "X"\n')
    assert main(["vtn", "--config", str(path)]) == 2
    assert "token" in capsys.readouterr().err
    path.write_text("vtn_id = = broken\n")
    assert main(["vtn", "--config", str(path)]) == 2
    assert main(["vtn", "--config", str(tmp_path / "missing.toml")]) == 2


@pytest.mark.parametrize(("token", "says"), [
    (None, "the environment variable CROWDFLEX_ADMIN_TOKEN (named by [admin] token_env) is not "
           "set"),
    ("short", "admin.token_env: expected the environment variable CROWDFLEX_ADMIN_TOKEN to hold "
              "a bearer token of at least 16 characters, not 5"),
])
def test_a_missing_or_short_admin_token_is_refused_before_anything_starts(
        token, says, monkeypatch, tmp_path, capsys):
    """#12: the token is checked with every other setting, before the database is created or
    migrated and before anything listens."""
    example = example_in(tmp_path, "vtn.toml")
    if token is None:
        monkeypatch.delenv("CROWDFLEX_ADMIN_TOKEN", raising=False)
    else:
        monkeypatch.setenv("CROWDFLEX_ADMIN_TOKEN", token)
    database = tmp_path / "vtn.db"
    assert main(["vtn", "--config", str(example), "--port", "0", "--admin-port", "0",
                 "--storage-url", f"sqlite:///{database}"]) == 2
    err = capsys.readouterr().err
    assert f"crowdflex vtn: {example}: " in err and says in err and "serving on" not in err
    assert not database.exists()


def test_an_unknown_loop_is_refused(tmp_path, capsys) -> None:
    with pytest.raises(ValueError, match="choose one of auto, uvloop, asyncio"):
        serving_loop_factory("trio")
    config = tmp_path / "vtn.toml"
    config.write_text('vtn_id = "X"\n')
    assert main(["vtn", "--config", str(config), "--no-admin", "--loop", "trio"]) == 1
    assert "choose one of" in capsys.readouterr().err
