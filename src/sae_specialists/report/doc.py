"""A tiny document model rendered both to Markdown (summary.md) and HTML (index.html).

Inline content is a list of items: a str (plain text), ("code", text) or ("link", text, url);
a url of None renders as plain text.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

Inline = list[Any]


def link(text: str, url: str | None) -> tuple[str, str, str | None]:
    return ("link", text, url)


def code(text: str) -> tuple[str, str]:
    return ("code", text)


@dataclass
class Doc:
    blocks: list[tuple] = field(default_factory=list)

    def h(self, level: int, *inline: Any) -> None:
        self.blocks.append(("h", level, list(inline)))

    def p(self, *inline: Any) -> None:
        self.blocks.append(("p", list(inline)))

    def ul(self, items: list[Inline]) -> None:
        self.blocks.append(("ul", items))

    def table(self, header: list[str], rows: list[list[Inline]]) -> None:
        self.blocks.append(("table", header, rows))

    # -- Markdown -------------------------------------------------------------------------
    def to_markdown(self) -> str:
        out: list[str] = []
        for block in self.blocks:
            kind = block[0]
            if kind == "h":
                out.append("#" * block[1] + " " + _md(block[2]))
            elif kind == "p":
                out.append(_md(block[1]))
            elif kind == "ul":
                out.append("\n".join("- " + _md(item) for item in block[1]))
            elif kind == "table":
                header, rows = block[1], block[2]
                lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |"]
                lines.append("|" + "|".join(" --- " for _ in header) + "|")
                lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in rows]
                out.append("\n".join(lines))
        return "\n\n".join(out) + "\n"

    # -- HTML -----------------------------------------------------------------------------
    def to_html(self, heading_offset: int = 0) -> str:
        out: list[str] = []
        for block in self.blocks:
            kind = block[0]
            if kind == "h":
                level = min(6, block[1] + heading_offset)
                out.append(f"<h{level}>{_html(block[2])}</h{level}>")
            elif kind == "p":
                out.append(f"<p>{_html(block[1])}</p>")
            elif kind == "ul":
                out.append("<ul>" + "".join(f"<li>{_html(i)}</li>" for i in block[1]) + "</ul>")
            elif kind == "table":
                header, rows = block[1], block[2]
                head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
                body = "".join(
                    "<tr>" + "".join(f"<td>{_html(c)}</td>" for c in row) + "</tr>" for row in rows
                )
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        return "\n".join(out)


def _items(inline: Any) -> list[Any]:
    if isinstance(inline, (str, tuple)):
        return [inline]
    return list(inline)


def _md_text(text: str) -> str:
    for ch in "\\`*_[]|<>":
        text = text.replace(ch, "\\" + ch)
    return text


def _md_cell(text: str) -> str:
    return _md_text(text)


def _md(inline: Any) -> str:
    parts = []
    for item in _items(inline):
        if isinstance(item, tuple) and item[0] == "code":
            parts.append("`" + item[1].replace("`", "'") + "`")
        elif isinstance(item, tuple) and item[0] == "link":
            text, url = item[1], item[2]
            parts.append(f"[{_md_text(text)}]({url})" if url else _md_text(text))
        else:
            parts.append(_md_text(str(item)))
    return "".join(parts)


def _html(inline: Any) -> str:
    parts = []
    for item in _items(inline):
        if isinstance(item, tuple) and item[0] == "code":
            parts.append(f"<code>{html.escape(item[1])}</code>")
        elif isinstance(item, tuple) and item[0] == "link":
            text, url = item[1], item[2]
            if url:
                parts.append(f'<a href="{html.escape(url, quote=True)}">{html.escape(text)}</a>')
            else:
                parts.append(html.escape(text))
        else:
            parts.append(html.escape(str(item)))
    return "".join(parts)
