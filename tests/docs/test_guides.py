"""The guides in docs/ run as written: every fenced block is executed here or says why not.

``python`` blocks are complete programs, each marked ``<!-- guide: NAME -->``; they run in their
own process, in a folder whose ``certs/dev/`` the guides' own ``sh`` blocks made, against the
VTN program of docs/vtn.md on 127.0.0.1 (ports 0, mutual TLS). A ``sh`` block runs with bash in
that folder unless an ``<!-- not run: REASON -->`` comment precedes it. Long-running programs are
driven by what they print (awaited under a timeout, never slept on) and stopped with SIGTERM,
which must end them cleanly (exit 0). The README's one ``python`` block (the library in three
lines) runs here too, its assertion included.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from schemas.conformance import corpus_dir
from tests.kit.net import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
TOKEN = "guide-test-admin-token-0123456789"
STEP_S = 60.0

_FENCE = re.compile(r"(?:<!--(?P<note>.*?)-->\s*)?^```(?P<lang>\w*)\n(?P<code>.*?)^```$",
                    re.M | re.S)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Block:
    lang: str
    code: str
    note: str  # the HTML comment right before the fence, without <!-- -->

    @property
    def name(self) -> str | None:
        found = re.match(r"\s*guide:\s*(\S+)", self.note)
        return found.group(1) if found else None

    @property
    def not_run(self) -> str | None:
        found = re.match(r"\s*not run:\s*(.+)", self.note, re.S)
        return " ".join(found.group(1).split()) if found else None


def blocks(guide: str) -> list[Block]:
    text = (DOCS / guide).read_text(encoding="utf-8")
    return [Block(m["lang"], m["code"], m["note"] or "") for m in _FENCE.finditer(text)]


def program(guide: str, name: str) -> str:
    (code,) = [b.code for b in blocks(guide) if b.name == name]
    return code


def shell_blocks(*guides: str) -> list[str]:
    """The sh blocks to run, in order, each distinct command once."""
    seen: list[str] = []
    for guide in guides:
        for block in blocks(guide):
            if block.lang == "sh" and block.not_run is None and block.code not in seen:
                seen.append(block.code)
    return seen


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["CROWDFLEX_ADMIN_TOKEN"] = TOKEN
    return env | extra


def run_shell(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-e", "-c", code], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


# ------------------------------------------------------------------ every block accounted for


# ven.md's "xmpp" runs in tests/xmpp/test_guide.py, beside the Prosody it needs
RUN_HERE = {"vtn.md": {"vtn"}, "ven.md": {"minimal", "event-model", "reports", "push", "xmpp"},
            "conformance.md": {"manifest", "check"}}  # fmt: skip


@pytest.mark.parametrize("guide", sorted(RUN_HERE))
def test_every_block_is_run_or_says_why_not(guide: str) -> None:
    found = blocks(guide)
    assert found, f"no code blocks in docs/{guide}"
    for block in found:
        if block.lang == "sh":
            continue  # run unless marked, by the tests below
        assert block.name is not None or block.not_run, f"unmarked block:\n{block.code}"
    assert {b.name for b in found if b.name} == RUN_HERE[guide]


def test_not_run_blocks_give_a_reason() -> None:
    notes = [b.not_run for g in RUN_HERE for b in blocks(g) if b.not_run is not None]
    assert notes and all(len(n) > 20 for n in notes)


# ------------------------------------------------------------------ running programs


class Program:
    """A guide's program in its own process; its output is read line by line."""

    def __init__(self, process: asyncio.subprocess.Process, name: str) -> None:
        self.process, self.name, self.lines = process, name, list[str]()

    @classmethod
    async def start(cls, home: Path, guide: str, name: str, **env: str) -> Program:
        path = home / f"guide_{name.replace('-', '_')}.py"  # not vtn.py: it would shadow vtn
        path.write_text(program(guide, name), encoding="utf-8")
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(path), cwd=home, env=_env(**env),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)  # fmt: skip
        return cls(process, name)

    async def expect(self, pattern: str) -> re.Match[str]:
        """The first line from now on matching ``pattern``."""
        assert self.process.stdout is not None
        async with asyncio.timeout(STEP_S):
            while True:
                raw = await self.process.stdout.readline()
                if not raw:
                    raise AssertionError(f"{self.name} ended before printing {pattern!r}:\n"
                                         + "\n".join(self.lines))  # fmt: skip
                line = raw.decode().rstrip()
                self.lines.append(line)
                if found := re.search(pattern, line):
                    return found

    async def stop(self) -> int:
        """SIGTERM; the exit status, once the program ended."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.stdout is not None
        async with asyncio.timeout(STEP_S):
            rest = await self.process.stdout.read()
            self.lines += rest.decode().splitlines()
            return await self.process.wait()

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder prepared by the guides' own shell blocks: certs/dev with the VTN's and VENs'."""
    folder = tmp_path_factory.mktemp("guides")
    for code in shell_blocks("vtn.md", "ven.md"):
        done = run_shell(code, folder)
        assert done.returncode == 0, f"{code}\n{done.stdout}{done.stderr}"
    return folder


async def _admin(url: str, method: str, path: str, body: dict[str, object]) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http, http.request(
            method, url + path, data=json.dumps(body), headers=headers) as reply:
        assert reply.status in (200, 201), await reply.text()
        answer: dict[str, object] = await reply.json()
        return answer


def _event(event_id: str, ven_id: str) -> dict[str, object]:
    start = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    return {"event_id": event_id, "market_context": "http://cbp.example/afrr", "start": start,
            "targets": {"ven_ids": [ven_id]},
            "signals": [{"name": "LOAD_DISPATCH", "type": "setpoint",
                         "intervals": [{"duration_s": 900, "value": 4.0}]}]}  # fmt: skip


async def test_the_vtn_and_ven_guides_run_against_each_other(home: Path) -> None:
    programs: list[Program] = []
    try:
        vtn = await Program.start(home, "vtn.md", "vtn", VTN_PORT="0", ADMIN_PORT="0")
        programs.append(vtn)
        found = await vtn.expect(r"VTN on (https://127\.0\.0\.1:\d+), admin API on (http://\S+)")
        vtn_url, admin_url = found.group(1), found.group(2)

        # the minimal VEN: registers, gets an event, opts in, stops cleanly
        minimal = await Program.start(home, "ven.md", "minimal", VTN_URL=vtn_url)
        programs.append(minimal)
        ven_id = (await minimal.expect(r"registered as (\S+)")).group(1)
        await vtn.expect(f"registering heat-pump-42 as {re.escape(ven_id)}")
        await _admin(admin_url, "POST", "/events", _event("evt-1", ven_id))
        await minimal.expect(r"event evt-1 #0 \w+: LOAD_DISPATCH \[4\.0\]")
        await vtn.expect(f"{re.escape(ven_id)} answered evt-1 #0: optIn")
        assert await minimal.stop() == 0
        assert minimal.lines[-1] == "stopped"

        # reports: nothing requested at once; the operator subscribes, the provider is called
        reports = await Program.start(home, "ven.md", "reports", VTN_URL=vtn_url)
        programs.append(reports)
        await reports.expect(r"offered meter-1; requested at once: 0")
        await _admin(admin_url, "POST", f"/vens/{ven_id}/reports/subscriptions", {
            "report_specifier_id": "meter-1", "r_ids": ["power"], "granularity_s": 1,
            "report_back_duration_s": 1, "reading_type": "Direct Read"})  # fmt: skip
        await reports.expect(r"report \S+ due for ")
        await vtn.expect(f"{re.escape(ven_id)} reported power = 1.5")
        assert await reports.stop() == 0

        # push mode: the VTN POSTs the event to the VEN's listener
        push = await Program.start(home, "ven.md", "push", VTN_URL=vtn_url,
                                   PUSH_PORT=str(free_port()))  # fmt: skip
        programs.append(push)
        push_id = (await push.expect(r"registered as (\S+), taking pushes")).group(1)
        assert push_id != ven_id
        await _admin(admin_url, "POST", "/events", _event("evt-2", push_id))
        await push.expect(r"pushed event evt-2 #0")
        await vtn.expect(f"{re.escape(push_id)} answered evt-2 #0: optIn")
        assert await push.stop() == 0

        assert await vtn.stop() == 0
        assert vtn.lines[-1] == "VTN stopped"
    except BaseException:
        for running in programs:
            print(f"--- {running.name}:", *running.lines, sep="\n")
        raise
    finally:
        for running in programs:
            running.kill()


def test_the_event_model_program_prints_every_field(tmp_path: Path) -> None:
    path = tmp_path / "event_model.py"
    path.write_text(program("ven.md", "event-model"), encoding="utf-8")
    done = subprocess.run([sys.executable, str(path)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=True)  # fmt: skip
    out = done.stdout
    assert "event_id act-20250318-1400-up modification_number 0" in out
    assert "market_context https://tso.example.nl/cbp/mFRR status far priority 1" in out
    assert "starts 2025-03-18T14:00:00+00:00 lasts 1:00:00 notification 0:05:00" in out
    assert "signal LOAD_DISPATCH setpoint sig-load-dispatch current 0.0" in out
    assert "  unit powerReal W scale M" in out
    assert "  interval 3 lasts 0:15:00 value 6.0" in out


# ------------------------------------------------------------------ the conformance guide


def test_the_conformance_guide_runs_as_written(tmp_path: Path) -> None:
    commands = shell_blocks("conformance.md")
    assert len(commands) == 2
    bundled = run_shell(commands[0], tmp_path)
    assert bundled.returncode == 0, bundled.stdout + bundled.stderr
    assert re.search(r"^\d+ passed, 0 failed$", bundled.stdout, re.M)

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "manifest.toml").write_text(program("conformance.md", "manifest"), encoding="utf-8")
    poll = (corpus_dir() / "valid" / "oadrPoll.xml").read_text(encoding="utf-8")
    shutil.copy(corpus_dir() / "valid" / "oadrPoll.xml", mine / "poll.xml")
    hostile = poll.replace("?>", '?><!DOCTYPE oadrPayload [<!ENTITY x "y">]>', 1)
    assert hostile != poll
    (mine / "poll-with-doctype.xml").write_text(hostile, encoding="utf-8")

    checked = run_shell(commands[1], tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "2 passed, 0 failed" in checked.stdout
    junit = (tmp_path / "conformance.xml").read_text(encoding="utf-8")
    assert junit.count("<testcase ") == 2

    script = tmp_path / "check.py"
    script.write_text(program("conformance.md", "check"), encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=True)  # fmt: skip
    assert done.stdout.splitlines()[-1] == "all passed"

    (mine / "broken.xml").write_text("<oadrPayload", encoding="utf-8")  # unlabelled, must decode
    failing = run_shell(commands[1], tmp_path)
    assert failing.returncode == 1
    assert re.search(r"^FAIL \S*broken\.xml: MalformedXml", failing.stdout, re.M)
    junit = (tmp_path / "conformance.xml").read_text(encoding="utf-8")
    assert junit.count("<testcase ") == 3 and junit.count("<failure ") == 1

    gone = run_shell(commands[1].replace("mine ", "nowhere ", 1), tmp_path)
    assert gone.returncode == 2 and "no such file or folder: nowhere" in gone.stderr
    (mine / "manifest.toml").write_text('["poll.xml"]\nexpect = \n', encoding="utf-8")
    unreadable = run_shell(commands[1], tmp_path)
    assert unreadable.returncode == 2
    assert "crowdflex conformance: cannot read manifest mine/manifest.toml" in unreadable.stderr


# ------------------------------------------------------------------ the README's library example


def test_the_readme_library_example_runs(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (example,) = [m["code"] for m in _FENCE.finditer(readme) if m["lang"] == "python"]
    script = tmp_path / "library.py"
    script.write_text(example + 'print("asserted")\n', encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, "asserted\n", "")
