"""The data-flow report for the privacy body, generated from the configuration that actually runs.

One model (:func:`data_flows`: rows of what data, which party, purpose, legal basis, retention,
pseudonymisation scope) rendered twice: Markdown and HTML. Every configured value (k, retention
days, recipients, purposes, legal bases) is interpolated, never restated by hand. The HTML renderer
escapes every cell (``html.escape``), so a recipient or purpose name cannot inject markup; the
Markdown renderer escapes ``|`` and line breaks so a value cannot break the table.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .config import PrivacyConfig
from .vault import GCP_PURPOSE

__all__ = ["DataFlow", "data_flows", "render_html", "render_markdown", "write_report"]

_COLUMNS: Final = (
    "Data", "Held by / sent to", "Purpose", "Legal basis (GDPR art. 6)", "Retention",
    "Pseudonymisation scope",
)  # fmt: skip
_TITLE: Final = "crowdflex data-flow report"


@dataclass(frozen=True, slots=True, kw_only=True)
class DataFlow:
    data: str
    party: str
    purpose: str
    legal_basis: str
    retention: str
    scope: str

    def cells(self) -> tuple[str, ...]:
        return (self.data, self.party, self.purpose, self.legal_basis, self.retention, self.scope)


def data_flows(config: PrivacyConfig) -> tuple[DataFlow, ...]:
    days = config.raw_retention.days
    rows = [
        DataFlow(
            data="Prosumer name, postcode, EAN of the connection, contract, device serial/VIN, "
            "device_uuid, per-device random salt, consent records",
            party="Aggregator only (identity vault, AES-256-GCM encrypted at rest)",
            purpose="Contract, payout, consent management, disputes",
            legal_basis=config.legal_basis.get(
                "settlement", "Art. 6(1)(b) GDPR, performance of a contract"
            ),
            retention="Contract duration; erased on request (crypto-shredding of the salts)",
            scope="Not pseudonymised: never leaves the aggregator",
        ),
        DataFlow(
            data="Raw 4-second device samples (kW), keyed by device_uuid",
            party="Aggregator only",
            purpose="Dispatch, baselines, prosumer payout",
            legal_basis=config.legal_basis.get(
                "settlement", "Art. 6(1)(b) GDPR, performance of a contract"
            ),
            retention=f"{days} days, then purged automatically",
            scope="Internal device_uuid; no name, address or EAN attached",
        ),
    ]
    for recipient in config.recipients:
        for purpose in recipient.purposes:
            rows.append(_recipient_flow(config, recipient.name, purpose))
    return tuple(rows)


def _recipient_flow(config: PrivacyConfig, recipient: str, purpose: str) -> DataFlow:
    if purpose == GCP_PURPOSE:
        data = "Grid connection point identified by its own pseudonym (never the EAN)"
    else:
        data = (
            "Per device: pseudonym, device class, power bucket, bidding zone, pool id; "
            "measurements as shares of the device's rated power (0.01 steps) only inside "
            "activation windows; a class x bucket x zone combination shared by fewer than "
            f"{config.k_threshold} devices is generalised to OTHER"
        )
    return DataFlow(
        data=data,
        party=recipient,
        purpose=purpose,
        legal_basis=config.legal_basis[purpose],
        retention="Set by the recipient; erasure notices list pseudonyms to delete",
        scope=f"Keyed pseudonym per recipient '{recipient}', purpose '{purpose}' and calendar "
        f"month ({config.month_timezone}); unlinkable across recipients, purposes and months",
    )


def _settings(config: PrivacyConfig) -> tuple[tuple[str, str], ...]:
    return (
        ("k-threshold (smallest group reported separately)", str(config.k_threshold)),
        ("Raw data retention", f"{config.raw_retention.days} days"),
        ("Pseudonym month calendar", config.month_timezone),
        ("Recipients", ", ".join(r.name for r in config.recipients)),
    )


def _md(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(config: PrivacyConfig) -> str:
    lines = [f"# {_TITLE}", "", "## Settings in force", ""]
    lines += [f"- {_md(name)}: **{_md(value)}**" for name, value in _settings(config)]
    lines += ["", "## Data flows", "", "| " + " | ".join(_COLUMNS) + " |"]
    lines.append("|" + "---|" * len(_COLUMNS))
    lines += ["| " + " | ".join(_md(c) for c in f.cells()) + " |" for f in data_flows(config)]
    return "\n".join(lines) + "\n"


def render_html(config: PrivacyConfig) -> str:
    e = html.escape
    settings = "".join(f"<li>{e(n)}: <strong>{e(v)}</strong></li>" for n, v in _settings(config))
    head = "".join(f"<th>{e(c)}</th>" for c in _COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{e(c)}</td>" for c in f.cells()) + "</tr>"
        for f in data_flows(config)
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(_TITLE)}</title>'
        "<style>table{border-collapse:collapse}td,th{border:1px solid #999;padding:4px;"
        "vertical-align:top}</style></head>\n"
        f"<body><h1>{e(_TITLE)}</h1><h2>Settings in force</h2><ul>{settings}</ul>"
        f"<h2>Data flows</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        "</body></html>\n"
    )


def write_report(config: PrivacyConfig, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = out_dir / "data-flow.md"
    page = out_dir / "data-flow.html"
    markdown.write_text(render_markdown(config), encoding="utf-8")
    page.write_text(render_html(config), encoding="utf-8")
    return markdown, page
