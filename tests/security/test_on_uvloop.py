"""The mutual-TLS and listening-socket tests again, on the event loop `crowdflex vtn` serves on.

``crowdflex vtn`` runs on uvloop when it is installed (:func:`vtn.runtime.serving_loop_factory`),
and uvloop brings its own TLS transport and server: the handshake deadline, the connection cap, the
refusals of bad certificates and the certificate-to-venID binding must hold there too. Every test
of :mod:`tests.security.test_certificates`, :mod:`tests.security.test_socket_limits`,
:mod:`tests.security.test_connection_caps` and :mod:`tests.security.test_eviction` that needs no
more than the PKI and a scratch directory runs here once more, unchanged, on uvloop.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from tests.kit.pki import Pki
from tests.security import test_certificates as certificates
from tests.security import test_connection_caps as connection_caps
from tests.security import test_eviction as eviction
from tests.security import test_socket_limits as socket_limits
from vtn.runtime import serving_loop_factory

_FIXTURES = frozenset({"pki", "sqlite_url", "tmp_path"})

TestFunction = Callable[..., Coroutine[Any, Any, None]]


def _rerunnable(*modules: Any) -> list[TestFunction]:
    return [test for module in modules for name, test in vars(module).items()
            if name.startswith("test_") and inspect.iscoroutinefunction(test)
            and set(inspect.signature(test).parameters) <= _FIXTURES]


_MODULES = (certificates, socket_limits, connection_caps, eviction)
RERUN = _rerunnable(*_MODULES)


def test_the_rerun_covers_every_module() -> None:
    modules = {test.__module__ for test in RERUN}
    assert modules == {module.__name__ for module in _MODULES}
    assert len(RERUN) >= 14


@pytest.mark.parametrize("test", RERUN, ids=lambda test: test.__name__)
def test_on_uvloop(test: TestFunction, pki: Pki, tmp_path: Path) -> None:
    available = {"pki": pki, "tmp_path": tmp_path,
                 "sqlite_url": f"sqlite:///{tmp_path / 'vtn.db'}"}
    arguments = {name: available[name] for name in inspect.signature(test).parameters}
    with asyncio.Runner(loop_factory=serving_loop_factory("uvloop")) as runner:
        assert type(runner.get_loop()).__module__.startswith("uvloop")
        runner.run(test(**arguments))
