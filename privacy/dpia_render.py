"""The DPIA's files for the privacy body (its factual part), generated from what runs; the
command that writes them is ``crowdflex privacy dpia``.

:func:`dpia_sections` (in :mod:`privacy.dpia`) builds the content from the ``[privacy]``
settings and the metering scope the nodes run with; this module renders it twice, Markdown and
HTML. Every configured value is interpolated, never restated by hand. The HTML renderer escapes
every cell (``html.escape``), so a recipient or purpose name cannot inject markup; the Markdown
renderer escapes ``|`` and line breaks so a value cannot break a table.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Final

from .config import PrivacyConfig
from .dpia import MeteringScope, Section, dpia_sections

__all__ = ["render_html", "render_markdown", "write_dpia"]

_TITLE: Final = "crowdflex DPIA (factual part)"


def _md(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _markdown_section(section: Section) -> list[str]:
    lines = [f"## {_md(section.title)}", ""]
    for paragraph in section.paragraphs:
        lines += [_md(paragraph), ""]
    if section.items:
        lines += [f"- {_md(item)}" for item in section.items] + [""]
    if section.table is not None:
        columns = section.table.columns
        lines.append("| " + " | ".join(_md(c) for c in columns) + " |")
        lines.append("|" + "---|" * len(columns))
        lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in section.table.rows]
        lines.append("")
    return lines


def render_markdown(config: PrivacyConfig, scope: MeteringScope | None = None) -> str:
    lines = [f"# {_TITLE}", ""]
    for section in dpia_sections(config, scope or MeteringScope()):
        lines += _markdown_section(section)
    return "\n".join(lines)


def _html_section(section: Section) -> str:
    e = html.escape
    parts = [f"<h2>{e(section.title)}</h2>"]
    parts += [f"<p>{e(p)}</p>" for p in section.paragraphs]
    if section.items:
        parts.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in section.items) + "</ul>")
    if section.table is not None:
        head = "".join(f"<th>{e(c)}</th>" for c in section.table.columns)
        body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>"
                       for row in section.table.rows)
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    return "\n".join(parts)


def render_html(config: PrivacyConfig, scope: MeteringScope | None = None) -> str:
    e = html.escape
    body = "\n".join(_html_section(s) for s in dpia_sections(config, scope or MeteringScope()))
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(_TITLE)}</title>'
        "<style>body{font-family:sans-serif;max-width:80em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:4px;vertical-align:top}</style></head>\n"
        f"<body><h1>{e(_TITLE)}</h1>\n{body}\n</body></html>\n"
    )


def write_dpia(config: PrivacyConfig, out_dir: Path,
               scope: MeteringScope | None = None) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = out_dir / "dpia.md"
    page = out_dir / "dpia.html"
    markdown.write_text(render_markdown(config, scope), encoding="utf-8")
    page.write_text(render_html(config, scope), encoding="utf-8")
    return markdown, page
