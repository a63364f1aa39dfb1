"""The small Markdown subset the model card is written in, rendered as safe HTML.

The card is kept as Markdown (MLflow shows `model_card.md` as text, and it reads well in a
terminal); the evaluation report embeds the same card as HTML. Only what `training.card` writes is
understood: `#`-headings, `- ` bullets (continued by lines indented two spaces), pipe tables,
paragraphs, `**bold**` and `` `code` ``. Every piece of text is HTML-escaped before any tag is
added, so a value in the card (a file name, a reason string) can never become markup.
"""

from __future__ import annotations

import html
import re

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_RULE_CELL = re.compile(r"^:?-{3,}:?$")


def inline(text: str) -> str:
    """Escape `text`, then turn `code` and **bold** spans into tags."""
    out = html.escape(text, quote=True)
    out = _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", out)
    return _BOLD.sub(lambda m: f"<strong>{m.group(1)}</strong>", out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _is_rule(line: str) -> bool:
    """The `|---|---|` line under a table's header."""
    cells = _cells(line)
    return bool(cells) and all(_RULE_CELL.match(c) for c in cells)


def table(lines: list[str]) -> str:
    """A pipe table (header, rule, rows) as an HTML table; a row's missing cells stay empty."""
    header, rows = _cells(lines[0]), [_cells(line) for line in lines[2:]]
    head = "".join(f"<th>{inline(c)}</th>" for c in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{inline(c)}</td>" for c in (row + [""] * len(header))[: max(len(header), len(row))])
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _take_table(lines: list[str], i: int) -> tuple[str, int]:
    end = i + 2
    while end < len(lines) and lines[end].lstrip().startswith("|"):
        end += 1
    return table(lines[i:end]), end


def _take_list(lines: list[str], i: int) -> tuple[str, int]:
    items: list[str] = []
    while i < len(lines) and (lines[i].startswith("- ") or (items and lines[i].startswith("  ") and lines[i].strip())):
        if lines[i].startswith("- "):
            items.append(lines[i][2:].strip())
        else:
            items[-1] += " " + lines[i].strip()
        i += 1
    return "<ul>" + "".join(f"<li>{inline(item)}</li>" for item in items) + "</ul>", i


def _take_paragraph(lines: list[str], i: int) -> tuple[str, int]:
    words: list[str] = []
    while i < len(lines) and lines[i].strip() and not _starts_block(lines, i):
        words.append(lines[i].strip())
        i += 1
    return f"<p>{inline(' '.join(words))}</p>", i


def _starts_block(lines: list[str], i: int) -> bool:
    line = lines[i]
    return bool(_HEADING.match(line)) or line.startswith("- ") or _starts_table(lines, i)


def _starts_table(lines: list[str], i: int) -> bool:
    return lines[i].lstrip().startswith("|") and i + 1 < len(lines) and _is_rule(lines[i + 1])


def to_html(markdown: str, shift: int = 0) -> str:
    """HTML for a Markdown text of the subset above; headings go `shift` levels deeper (a card
    embedded under the report's own <h1> starts at <h2>)."""
    lines = markdown.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        heading = _HEADING.match(line)
        if not line.strip():
            i += 1
            continue
        if heading:
            level = min(6, len(heading.group(1)) + shift)
            out.append(f"<h{level}>{inline(heading.group(2).strip())}</h{level}>")
            i += 1
            continue
        if _starts_table(lines, i):
            block, i = _take_table(lines, i)
        elif line.startswith("- "):
            block, i = _take_list(lines, i)
        else:
            block, i = _take_paragraph(lines, i)
        out.append(block)
    return "\n".join(out)
