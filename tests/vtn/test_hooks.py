"""The application's hooks (vtn.services.hooks): plain functions and coroutine functions alike,
given their arguments by position, and no hook at all reads as None."""

from __future__ import annotations

from vtn.services import call_hook


async def test_a_plain_hook_s_result_comes_back() -> None:
    seen: list[tuple[str, int]] = []

    def hook(first: str, second: int) -> bool:
        seen.append((first, second))
        return False

    assert await call_hook(hook, "ven-1", 2) is False
    assert seen == [("ven-1", 2)]


async def test_a_coroutine_hook_is_awaited() -> None:
    async def hook(anything: str) -> tuple[str, ...]:
        return (anything,)

    assert await call_hook(hook, "ven-1") == ("ven-1",)


async def test_no_hook_is_none() -> None:
    assert await call_hook(None) is None
