"""The tests' XMPP server: :class:`cbp.demo.prosody.XmppServer`, a real Prosody per test on a
free loopback port, started as a child process and stopped afterwards.

Without Debian's ``prosody`` a test that needs it is skipped naming the package, except with
``CROWDFLEX_REQUIRE_PROSODY=1`` (as in CI, whose ``.ci/run`` installs it), where it fails.
"""

from __future__ import annotations

import os

import pytest

from cbp.demo.prosody import XmppServer, prosody_binary

__all__ = ["XmppServer", "require_prosody"]


def require_prosody() -> None:
    try:
        prosody_binary()
    except FileNotFoundError as missing:
        if os.environ.get("CROWDFLEX_REQUIRE_PROSODY") == "1":
            pytest.fail(f"{missing} (CROWDFLEX_REQUIRE_PROSODY=1)")
        pytest.skip(str(missing))
