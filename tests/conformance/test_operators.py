"""The two operators for products other than crowdflex, a shell command hook and a person, and
the admin API operator's bound on what it reads."""

from __future__ import annotations

import io
import json
import shlex
import sys

import pytest
from aiohttp import web

from cbp.conformance import (
    AdminApiOperator,
    CommandOperator,
    OperatorError,
    PromptOperator,
    Step,
    StepKind,
)
from cbp.conformance._model import MAX_BODY_BYTES

from .conftest import endless_xml

STEP = Step(kind=StepKind.CANCEL_EVENT, ven_id="ven-1", params={"event_id": "ev-<1>"})


def python(code: str) -> str:
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"


async def test_command_gets_the_step_as_json_on_stdin(tmp_path):
    seen = tmp_path / "step.json"
    await CommandOperator(python(
        f"import sys; open({str(seen)!r}, 'w').write(sys.stdin.read())")).perform(STEP)
    assert json.loads(seen.read_text()) == {
        "action": "cancel_event", "ven_id": "ven-1", "params": {"event_id": "ev-<1>"},
        "instruction": "Cancel the event below on the VTN"}


async def test_a_failing_command_is_an_operator_error_with_its_stderr():
    with pytest.raises(OperatorError, match="exited 3: no such event"):
        await CommandOperator(python(
            "import sys; sys.stdin.read(); sys.stderr.write('no such event'); sys.exit(3)"
        )).perform(STEP)


async def test_a_command_past_its_deadline_is_killed():
    with pytest.raises(OperatorError, match="killed"):
        await CommandOperator(python("import time; time.sleep(30)"),
                              timeout_s=0.5).perform(STEP)


async def test_the_prompt_shows_the_step_and_enter_confirms():
    shown = io.StringIO()
    await PromptOperator(output=shown, read_line=lambda: "\n").perform(STEP)
    assert "Cancel the event below on the VTN" in shown.getvalue()
    assert '"event_id": "ev-<1>"' in shown.getvalue()


@pytest.mark.parametrize(("answer", "reason"), [
    ("no such button\n", "could not do it: no such button"),
    ("", "input ended"),
])
async def test_the_prompt_reports_what_could_not_be_done(answer, reason):
    with pytest.raises(OperatorError, match=reason):
        await PromptOperator(output=io.StringIO(), read_line=lambda: answer).perform(STEP)


async def test_an_admin_api_answering_without_end_is_read_up_to_the_cap():
    """Red team: the admin API's answer was read whole, for as long as it came (up to the
    operator's 30 s deadline); now at most ``MAX_BODY_BYTES`` of it, and the step is done."""
    sent = [0]

    async def endless(request: web.Request) -> web.StreamResponse:
        return web.Response(status=200, body=endless_xml(sent), content_type="application/json")

    app = web.Application()
    app.router.add_post("/events/{event_id}/cancel", endless)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        operator = AdminApiOperator(f"http://127.0.0.1:{runner.addresses[0][1]}", "token",
                                    timeout_s=5.0)
        await operator.perform(STEP)
    finally:
        await runner.cleanup()
    assert sent[0] < 16 * MAX_BODY_BYTES  # what the socket buffers took before it left
