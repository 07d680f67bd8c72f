"""What a process serving a VTN sets for itself: its event loop and its process-wide tuning."""

from __future__ import annotations

import asyncio
import gc
import platform
import subprocess
import sys
from collections.abc import Iterator

import pytest
import uvloop

from vtn.runtime import serving_loop_factory, tune_serving_process


def _loop_of(name: str) -> asyncio.AbstractEventLoop:
    with asyncio.Runner(loop_factory=serving_loop_factory(name)) as runner:
        return runner.get_loop()


def test_auto_serves_on_uvloop_when_it_is_installed() -> None:
    assert isinstance(_loop_of("auto"), uvloop.Loop)
    assert isinstance(_loop_of("uvloop"), uvloop.Loop)


def test_asyncio_is_the_standard_library_loop() -> None:
    loop = _loop_of("asyncio")
    assert not isinstance(loop, uvloop.Loop)
    assert type(loop).__module__.startswith("asyncio")


@pytest.fixture
def restored_process_settings() -> Iterator[None]:
    interval, threshold = sys.getswitchinterval(), gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
        sys.setswitchinterval(interval)


@pytest.mark.usefixtures("restored_process_settings")
def test_tuning_freezes_what_is_loaded_and_collects_young_objects_less_often() -> None:
    young, *older = gc.get_threshold()
    tune_serving_process()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] > young
    assert list(gc.get_threshold()[1:]) == older
    assert sys.getswitchinterval() < 0.005


_MMAPPED_AFTER_A_FREE = """
import ctypes, sys
from vtn.runtime import tune_serving_process
if sys.argv[1] == "tuned":
    tune_serving_process()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.free(libc.malloc(256 * 1024))  # untuned glibc raises its mmap threshold past this size
block = libc.malloc(256 * 1024)
print(bool(ctypes.c_size_t.from_address(block - 8).value & 2))  # the chunk's IS_MMAPPED bit
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the mmap threshold is glibc's")
@pytest.mark.parametrize(("setup", "mmapped"), [("tuned", "True"), ("plain", "False")])
def test_tuning_keeps_every_tls_read_buffer_sized_block_its_own_mapping(setup, mmapped) -> None:
    """uvloop's 256 KiB TLS read buffer of each connection stays mmap-ed in a tuned process even
    after one was freed; without the tuning glibc carves the next one out of its heap."""
    done = subprocess.run([sys.executable, "-c", _MMAPPED_AFTER_A_FREE, setup],
                          capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == mmapped
