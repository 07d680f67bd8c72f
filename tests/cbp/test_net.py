"""cbp.net.free_port: the one place the platform asks the kernel for a port it binds later."""

from __future__ import annotations

import socket

import pytest

from cbp.net import free_port


@pytest.mark.parametrize(("host", "family"), [("127.0.0.1", socket.AF_INET),
                                              ("::1", socket.AF_INET6)])
def test_a_free_port_can_be_listened_on_at_its_host(host: str, family: socket.AddressFamily
                                                    ) -> None:
    port = free_port(host)
    assert port > 0
    with socket.socket(family) as server:
        server.bind((host, port))
        server.listen()
        assert server.getsockname()[1] == port
