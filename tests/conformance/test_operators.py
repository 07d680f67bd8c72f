"""The two operators for products other than crowdflex: a shell command hook and a person."""

from __future__ import annotations

import io
import json
import shlex
import sys

import pytest

from cbp.conformance import CommandOperator, OperatorError, PromptOperator, Step, StepKind

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
