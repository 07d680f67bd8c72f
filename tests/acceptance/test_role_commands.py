"""Acceptance (issue 5): `crowdflex tso`, `crowdflex aggregator` and `crowdflex device` run as
separate processes from TOML configs and work together over mutual TLS.

Everything goes through the installed ``crowdflex`` console script: ``certs`` makes the PKI,
``privacy keygen`` the vault key, ``aggregator --onboard`` imports the onboarding records (one
prosumer without consent). The TSO and the aggregator bind port 0 and report the port they got in
their ``--status-file``; the test reads those files (polling under a timeout) to learn the URLs
and to follow the run: the devices register (the one without consent is refused), the aggregator
registers its pool of exactly those devices with the TSO, offers, the TSO awards at gate closure
and activates the award (``[operation] activate_awards``), the aggregator dispatches setpoints to
the devices and every device acknowledges them. Then every process gets SIGTERM and must exit 0,
write ``"state": "stopped"`` and leave SQLite files that pass ``PRAGMA integrity_check``; the
privacy audit of the captured aggregator->TSO messages must pass.
"""

from __future__ import annotations

import csv
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from cbp.pki import CertificateAuthority, Role

CROWDFLEX = Path(sys.executable).with_name("crowdflex")
PROCESSES, PER_PROCESS = 2, 25  # 50 devices: enough flex for the 0.1 MW minimum offer
T = TypeVar("T")


class Node:
    """One ``crowdflex`` node process, its log and its status file."""

    def __init__(self, name: str, directory: Path, *args: str) -> None:
        self.name = name
        self.status_file = directory / f"{name}.status.json"
        self.log = directory / f"{name}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(CROWDFLEX), *args, "--status-file", str(self.status_file)],
                cwd=directory, stdout=log, stderr=subprocess.STDOUT)

    def status(self) -> dict[str, Any]:
        try:
            loaded: dict[str, Any] = json.loads(self.status_file.read_text())
        except FileNotFoundError:
            return {}
        return loaded

    def tail(self) -> str:
        return f"--- {self.name} ---\n" + self.log.read_text(errors="replace")[-3000:]

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait for the exit code (SIGKILL only if it never comes)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    started: list[Node] = []
    yield started
    for node in reversed(started):  # devices first, the TSO last
        if node.process.poll() is None:
            node.process.terminate()
    for node in started:
        try:
            node.process.wait(30)
        except subprocess.TimeoutExpired:
            node.process.kill()
            node.process.wait()


def wait_for(check: Callable[[], T | None], what: str, nodes: list[Node],
             timeout: float) -> T:
    """Poll ``check`` until it returns something truthy; fail early if a node exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        for node in nodes:
            if node.process.poll() is not None:
                pytest.fail(f"{node.name} exited ({node.process.returncode}) while waiting for "
                            f"{what}\n" + "\n".join(n.tail() for n in nodes))
        time.sleep(0.2)  # re-check interval, bounded by the deadline
    pytest.fail(f"timed out waiting for {what}\n" + "\n".join(n.tail() for n in nodes))


def crowdflex(*args: str, cwd: Path) -> str:
    done = subprocess.run([str(CROWDFLEX), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def make_pki(tmp: Path, names: list[str]) -> dict[str, str]:
    """The role certificates through ``crowdflex certs``; the device certificates (many) from the
    same CA through cbp.pki. Returns each device's fingerprint by name."""
    certs = tmp / "certs"
    crowdflex("certs", "init", "--dir", str(certs), cwd=tmp)  # ca, vtn (the TSO), ven
    crowdflex("certs", "issue", "--dir", str(certs), "--name", "aggregator-vtn", "--role", "vtn",
              cwd=tmp)
    authority = CertificateAuthority.load(certs / "ca.pem", certs / "ca.key")
    (certs / "devices").mkdir()
    fingerprints = {}
    for name in names:
        issued = authority.issue(name, Role.VEN)
        issued.write(certs / "devices")
        fingerprints[name] = issued.fingerprint
    return fingerprints


def write_onboarding(path: Path, fingerprints: dict[str, str], refused: str) -> None:
    classes = ("ev_charger", "heat_pump", "battery")
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(("ven_id", "prosumer_id", "name", "postcode", "ean", "contract_id",
                         "serial", "device_class", "rated_kw", "consent"))
        for i, (name, fingerprint) in enumerate(sorted(fingerprints.items())):
            writer.writerow((fingerprint, f"P{i:05d}", f"Prosumer {i}", f"{1000 + i} AB",
                             f"871{i:015d}", f"C-{i:05d}", f"SN-{i:08d}", classes[i % 3],
                             "7.4", "no" if name == refused else "yes"))


def vtn_table(vtn_id: str, db: str, cert: str, extra: str = "") -> str:
    return (f'[vtn]\nvtn_id = "{vtn_id}"\nstorage_url = "sqlite:///{db}"\nhost = "127.0.0.1"\n'
            f"port = 0\nadmin_enabled = false\noffer_metadata = false\n{extra}"
            f'[vtn.tls]\ncert = "certs/{cert}.pem"\nkey = "certs/{cert}.key"\n'
            f'ca = "certs/ca.pem"\n')


def tso_toml(tmp: Path) -> Path:
    path = tmp / "tso.toml"
    path.write_text(
        'capture_dir = "captures/aggregator-tso"\n'
        + vtn_table("TSO-ACCEPTANCE", "tso.db", "vtn",
                    "poll_frequency_s = 1\nmax_body_bytes = 33554432\n")
        + '[profile]\nname = "compressed"\n[operation]\nactivate_awards = true\n')
    return path


def aggregator_toml(tmp: Path, tso_url: str) -> Path:
    path = tmp / "aggregator.toml"
    path.write_text(
        vtn_table("AGGREGATOR-VTN", "aggregator.db", "aggregator-vtn", "poll_frequency_s = 4\n")
        + '[vtn.reports]\nauto_subscribe = ["TELEMETRY_USAGE"]\n'
        + f'[tso]\nurl = "{tso_url}"\ncert = "certs/ven.pem"\nkey = "certs/ven.key"\n'
        + 'ca = "certs/ca.pem"\noutbox = "aggregator-outbox.db"\n'
        + '[vault]\npath = "vault.db"\nkey_file = "vault-master.key"\n'
        + '[devices]\ncsv = "devices.csv"\n[profile]\nname = "compressed"\n')
    return path


def device_toml(tmp: Path, index: int, url: str, names: list[str]) -> Path:
    path = tmp / f"device-{index}.toml"
    listed = ", ".join(f'"{n}"' for n in names)
    path.write_text(
        f'[aggregator]\nurl = "{url}"\nca = "certs/ca.pem"\n'
        f'[fleet]\ncerts = "certs/devices"\nnames = [{listed}]\nseed = {index + 1}\n'
        f'outbox = "devices-{index}-outbox.db"\n[profile]\nname = "compressed"\n')
    return path


def serving(node: Node) -> dict[str, Any] | None:
    status = node.status()
    return status if status.get("state") == "serving" else None


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def test_tso_aggregator_and_device_processes_register_offer_activate_and_ack(
        tmp_path: Path, nodes: list[Node]) -> None:
    names = [f"device-{i:05d}" for i in range(PROCESSES * PER_PROCESS + 1)]
    refused = names[-1]  # its owner gives no consent
    fingerprints = make_pki(tmp_path, names)
    crowdflex("privacy", "keygen", "--key-file", str(tmp_path / "vault-master.key"), cwd=tmp_path)
    write_onboarding(tmp_path / "onboarding.csv", fingerprints, refused)

    tso = Node("tso", tmp_path, "tso", "--config", str(tso_toml(tmp_path)))
    nodes.append(tso)
    tso_url = wait_for(lambda: serving(tso), "the TSO to serve", nodes, 60)["url"]
    agg_config = aggregator_toml(tmp_path, tso_url)
    said = crowdflex("aggregator", "--config", str(agg_config), "--onboard",
                     str(tmp_path / "onboarding.csv"), cwd=tmp_path)
    assert f"onboarded {len(names) - 1} device(s)" in said and "1 refused" in said, said
    again = crowdflex("aggregator", "--config", str(agg_config), "--onboard",
                      str(tmp_path / "onboarding.csv"), cwd=tmp_path)
    assert "onboarded 0 device(s)" in again, again  # importing twice adds nothing

    aggregator = Node("aggregator", tmp_path, "aggregator", "--config", str(agg_config))
    nodes.append(aggregator)
    agg_url = wait_for(lambda: serving(aggregator), "the aggregator to serve", nodes, 60)["url"]
    ven_id = aggregator.status()["ven_id"]
    wait_for(lambda: tso.status().get("pools", {}).get(ven_id) == {"VDB-AFRR-01": 0},
             "the aggregator's (still empty) pool at the TSO", nodes, 30)

    groups = [names[i * PER_PROCESS:(i + 1) * PER_PROCESS] for i in range(PROCESSES)]
    groups[-1].append(refused)
    fleets = [Node(f"devices-{i}", tmp_path, "device", "--config",
                   str(device_toml(tmp_path, i, agg_url, group)))
              for i, group in enumerate(groups)]
    nodes.extend(fleets)
    wanted = PROCESSES * PER_PROCESS

    def running() -> list[dict[str, Any]] | None:
        found = [f.status() for f in fleets]
        return found if all(s.get("state") == "running" for s in found) else None

    statuses = wait_for(running, "every device process to register its devices", nodes, 180)
    assert sum(s["registered"] for s in statuses) == wanted
    assert sum(s["refused"] for s in statuses) == 1

    def pool_at_tso() -> int | None:
        count = tso.status().get("pools", {}).get(ven_id, {}).get("VDB-AFRR-01")
        return count if count == wanted else None

    wait_for(pool_at_tso, f"the TSO's pool registration of {wanted} devices", nodes, 60)
    agg = aggregator.status()
    assert agg["devices"] == {"onboarded": wanted, "registered": wanted}
    assert agg["pool"]["registered_devices"] == wanted

    def acked_activation() -> tuple[str, dict[str, Any]] | None:
        for event_id, activation in tso.status().get("activations", {}).items():
            downstream = aggregator.status().get("activations", {}).get(event_id)
            if activation["acks"] and downstream and downstream["all_acked"]:
                return event_id, downstream
        return None

    event_id, downstream = wait_for(acked_activation, "an activation acknowledged by the "
                                    "aggregator and by every dispatched device", nodes, 300)
    assert 0 < downstream["devices"] <= wanted
    assert downstream["acked"] == downstream["devices"]
    assert any(o["accepted"] for o in aggregator.status()["offers"].values())
    assert tso.status()["activations"][event_id]["ven_id"] == ven_id

    for node in reversed(nodes):  # devices, aggregator, TSO: SIGTERM and a clean exit
        assert node.stop() == 0, node.tail()
        assert node.status()["state"] == "stopped", node.tail()
    assert sum(f.status()["setpoint_events"] for f in fleets) >= downstream["devices"]
    for db in ("tso.db", "aggregator.db", "aggregator-outbox.db", "vault.db",
               "devices-0-outbox.db", "devices-1-outbox.db"):
        assert integrity(tmp_path / db) == "ok", db
    audit = subprocess.run(
        [str(CROWDFLEX), "privacy", "audit", str(tmp_path), "--vault", str(tmp_path / "vault.db"),
         "--key-file", str(tmp_path / "vault-master.key")],
        capture_output=True, text=True, timeout=120, check=False)
    assert audit.returncode == 0, audit.stdout + audit.stderr
