"""Operator steps: what a case needs the node's operator to do, and the ways to get it done.

Some cases need the node under test to act on its own: a VTN to create an event with exact
parameters, request a report, cancel a registration; a VEN to send or cancel an opt. The case
describes the act as a :class:`Step`; an :class:`Operator` carries it out and returns once it is
done:

- :class:`AdminApiOperator`: crowdflex's own VTN, through its admin JSON API (README "Admin API").
  A step's ``params`` are in that API's body form, so they double as a precise description.
- :class:`~cbp.conformance.CrowdflexVen`: crowdflex's own VEN, through its client's opt API.
- :class:`PromptOperator`: a person at the terminal; the step is shown and Enter confirms it.
- :class:`CommandOperator`: any other product; a shell command gets the step as one JSON object
  on stdin (``{"action", "ven_id", "params", "instruction"}``) and exits 0 when it is done.

Every operator has a deadline (and of the admin API's answer at most
:data:`~cbp.conformance._model.MAX_BODY_BYTES` is read); a refused or failed step raises
:class:`OperatorError`, which :func:`carry_out` turns into the case's failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, TextIO
from urllib.parse import quote

import aiohttp

from ven import read_capped

from ._model import MAX_BODY_BYTES, CaseFailed, OperatorError

__all__ = [
    "AdminApiOperator",
    "CommandOperator",
    "Operator",
    "PromptOperator",
    "Step",
    "StepKind",
    "carry_out",
]


class StepKind(StrEnum):
    CREATE_EVENT = "create_event"
    MODIFY_EVENT = "modify_event"
    CANCEL_EVENT = "cancel_event"
    REQUEST_REPORT = "request_report"
    CANCEL_REPORT = "cancel_report"
    CANCEL_REGISTRATION = "cancel_registration"
    REQUEST_REREGISTRATION = "request_reregistration"
    CREATE_OPT = "create_opt"
    CANCEL_OPT = "cancel_opt"


_INSTRUCTIONS: dict[StepKind, str] = {
    StepKind.CREATE_EVENT: "Create this event on the VTN, for venID {ven_id}",
    StepKind.MODIFY_EVENT: "Modify the event on the VTN so that it reads as below "
                           "(its modificationNumber must rise)",
    StepKind.CANCEL_EVENT: "Cancel the event below on the VTN",
    StepKind.REQUEST_REPORT: "Request this report from venID {ven_id} (oadrCreateReport)",
    StepKind.CANCEL_REPORT: "Cancel this report request of venID {ven_id} (oadrCancelReport)",
    StepKind.CANCEL_REGISTRATION: "Cancel the registration of venID {ven_id} from the VTN",
    StepKind.REQUEST_REREGISTRATION: "Ask venID {ven_id} to register again "
                                     "(oadrRequestReregistration)",
    StepKind.CREATE_OPT: "Have venID {ven_id} send this opt to the VTN (oadrCreateOpt); the "
                         "step is done once it is sent, whatever the VTN answers",
    StepKind.CANCEL_OPT: "Have venID {ven_id} cancel the opt with this optID (oadrCancelOpt)",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One act of the VTN's operator. ``params`` is JSON-ready (times ISO 8601, durations s)."""

    kind: StepKind
    ven_id: str
    params: Mapping[str, Any]

    @property
    def instruction(self) -> str:
        return _INSTRUCTIONS[self.kind].format(ven_id=self.ven_id)

    def to_json(self) -> str:
        return json.dumps({"action": self.kind.value, "ven_id": self.ven_id,
                           "params": dict(self.params), "instruction": self.instruction})


class Operator(Protocol):
    async def perform(self, step: Step) -> None:
        """Carry ``step`` out; return when it is done; raise :class:`OperatorError` if not."""


async def carry_out(operator: Operator, step: Step) -> None:
    """Have ``operator`` do ``step``; :class:`CaseFailed` saying why when it cannot."""
    try:
        await operator.perform(step)
    except OperatorError as exc:
        raise CaseFailed(f"operator step {step.kind.value} failed: {exc}") from None


class AdminApiOperator:
    """crowdflex's VTN: each step is one admin API request with the bearer token."""

    def __init__(self, admin_url: str, token: str, *, timeout_s: float = 30.0) -> None:
        self.admin_url = admin_url.rstrip("/")
        self._token = token
        self.timeout_s = timeout_s

    def _request(self, step: Step) -> tuple[str, str, Mapping[str, Any] | None, int]:
        ven = quote(step.ven_id, safe="")
        params = step.params
        match step.kind:
            case StepKind.CREATE_EVENT:
                return "POST", "/events", params, 201
            case StepKind.MODIFY_EVENT:
                return "PUT", f"/events/{quote(params['event_id'], safe='')}", params, 200
            case StepKind.CANCEL_EVENT:
                return "POST", f"/events/{quote(params['event_id'], safe='')}/cancel", None, 200
            case StepKind.REQUEST_REPORT:
                return "POST", f"/vens/{ven}/reports/subscriptions", params, 201
            case StepKind.CANCEL_REPORT:
                rrid = quote(params["report_request_id"], safe="")
                return "DELETE", f"/vens/{ven}/reports/subscriptions/{rrid}", None, 200
            case StepKind.CANCEL_REGISTRATION:
                return "POST", f"/vens/{ven}/cancel", None, 202
            case StepKind.REQUEST_REREGISTRATION:
                return "POST", f"/vens/{ven}/reregister", None, 202
            case StepKind.CREATE_OPT | StepKind.CANCEL_OPT:
                raise OperatorError(f"{step.kind.value} is a VEN's step, not the VTN's")

    async def perform(self, step: Step) -> None:
        method, path, body, expected = self._request(step)
        headers = {"Authorization": f"Bearer {self._token}"}
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http, http.request(
                    method, self.admin_url + path, json=body, headers=headers) as reply:
                text = (await read_capped(reply.content, MAX_BODY_BYTES)).decode(
                    errors="replace")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise OperatorError(f"admin API at {self.admin_url} unreachable: {exc!r}") from None
        if reply.status != expected:
            raise OperatorError(f"admin API {method} {path} answered {reply.status}: "
                                f"{text[:300]}")


class PromptOperator:
    """A person: the step is printed on ``output``; an empty line confirms it is done, any other
    answer says it could not be done (the answer becomes the reason)."""

    def __init__(self, *, output: TextIO | None = None,
                 read_line: Callable[[], str] | None = None,
                 timeout_s: float = 600.0) -> None:
        self.output = output or sys.stdout
        self.read_line = read_line or (lambda: sys.stdin.readline())
        self.timeout_s = timeout_s

    async def perform(self, step: Step) -> None:
        print(f"\nOPERATOR STEP: {step.instruction}", file=self.output)
        print(json.dumps(dict(step.params), indent=2), file=self.output)
        print("Press Enter when done (or type why it cannot be done): ", end="",
              file=self.output, flush=True)
        try:
            async with asyncio.timeout(self.timeout_s):
                answer = await asyncio.to_thread(self.read_line)
        except TimeoutError:
            raise OperatorError(f"no answer from the operator in {self.timeout_s:g} s") from None
        if answer == "":
            raise OperatorError("the operator's input ended (no terminal?)")
        if answer.strip():
            raise OperatorError(f"the operator could not do it: {answer.strip()}")


class CommandOperator:
    """A shell command per step, the step as JSON on its stdin; exit status 0 means done."""

    def __init__(self, command: str, *, timeout_s: float = 120.0) -> None:
        self.command = command
        self.timeout_s = timeout_s

    async def perform(self, step: Step) -> None:
        # its own session, so a deadline kills the shell and whatever it started
        process = await asyncio.create_subprocess_shell(
            self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, start_new_session=True)
        try:
            async with asyncio.timeout(self.timeout_s):
                _, stderr = await process.communicate(step.to_json().encode())
        except TimeoutError:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            raise OperatorError(f"operator command still running after {self.timeout_s:g} s; "
                                "killed") from None
        if process.returncode != 0:
            tail = stderr.decode(errors="replace").strip()[-300:]
            raise OperatorError(f"operator command exited {process.returncode}: {tail}")
