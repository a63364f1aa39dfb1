"""The model card's Markdown rendered as safe HTML, by markdown-it-py.

The card is kept as Markdown (MLflow shows `model_card.md` as text, and it reads well in a
terminal); the evaluation report embeds the same card as HTML. The "js-default" preset renders
pipe tables and never passes raw HTML through, so a value in the card (a file name, a reason
string) can never become markup.
"""

from __future__ import annotations

import re
from functools import cache

from markdown_it import MarkdownIt

_HEADING_TAG = re.compile(r"<(/?)h([1-6])>")


@cache
def _renderer() -> MarkdownIt:
    return MarkdownIt("js-default")


def to_html(markdown: str, shift: int = 0) -> str:
    """HTML for a Markdown text; headings go `shift` levels deeper (a card embedded under the
    report's own <h1> starts at <h2>)."""
    rendered = _renderer().render(markdown)
    if not shift:
        return rendered
    return _HEADING_TAG.sub(lambda m: f"<{m.group(1)}h{min(6, int(m.group(2)) + shift)}>", rendered)
