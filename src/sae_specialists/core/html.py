"""The one HTML page shell (head, shared CSS) of every page the workflow writes, and the one way a
token is drawn in HTML. Pages are self-contained: no external file, no network."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .tokens import EMPTY_TOKEN, WHITESPACE

# Shared by every page; each page adds its own rules after these.
BASE_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:74em;
 padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
nav a{margin-right:.8em}
.tok{border-right:1px solid rgba(0,0,0,.08);cursor:default}
.tok:hover,.tok.sel{outline:2px solid #1c7ed6}
.ws{color:#aaa}
.legend{display:inline-block;width:12em;height:.9em;vertical-align:middle;border:1px solid #ccc;
 background:linear-gradient(to right,rgba(240,140,0,0),rgba(240,140,0,1))}
#info{position:sticky;top:0;background:#f8f9fa;border:1px solid #ddd;border-radius:4px;
 padding:.3em .6em;font-family:ui-monospace,monospace;font-size:.9em;min-height:1.4em;z-index:1}
"""

# Hover / click read-out of a token span into #info: its data-info (every token of the span:
# text, position, activation), else data-tok / data-pos / data-act.
TOKEN_JS = """
(function(){
  var info=document.getElementById('info');
  function show(el){
    info.textContent=el.getAttribute('data-info')||('token '+el.getAttribute('data-tok')+
      '  ·  position '+el.getAttribute('data-pos')+'  ·  activation '+
      el.getAttribute('data-act'));
  }
  document.querySelectorAll('.tok').forEach(function(el){
    el.addEventListener('mouseenter',function(){show(el);});
    el.addEventListener('click',function(){
      document.querySelectorAll('.tok.sel').forEach(function(s){s.classList.remove('sel');});
      el.classList.add('sel');show(el);
    });
  });
})();
"""


def page(title: str, body: Iterable[str], css: str = "", script: str = "") -> str:
    """A complete page: the shell, ``body``'s parts one per line, the optional script."""
    head = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title><style>{BASE_CSS}{css}</style></head><body>"
    )
    tail = (f"<script>{script}</script>" if script else "") + "</body></html>"
    return "\n".join([head, *body, tail])


def token_html(token: str, breaks: bool = True) -> str:
    """HTML for a token inside running text: escaped; spaces stay spaces (so text reads
    naturally) except in whitespace-only tokens, which show ␣; newlines, tabs and CR always show
    a grey marker (with ``breaks``, a newline or tab is also kept after its marker, so
    pre-wrapped text keeps its layout)."""
    if token == "":
        return f'<span class="ws">{EMPTY_TOKEN}</span>'
    only_ws = token.strip() == ""
    out = []
    for ch in token:
        if ch in "\n\t":
            out.append(f'<span class="ws">{WHITESPACE[ch]}</span>' + (ch if breaks else ""))
        elif ch == "\r" or (ch == " " and only_ws):
            out.append(f'<span class="ws">{WHITESPACE[ch]}</span>')
        else:
            out.append(html.escape(ch))
    return "".join(out)


SHADE_RGB = "240,140,0"


@dataclass(frozen=True)
class Tok:
    """One token to draw: its raw bytes, position and activation; ``alpha`` (0..1) its shading;
    ``classes`` extra CSS classes; ``label`` drawn instead of its text (e.g. ⟨BOS⟩); ``note``
    added to its hover line (e.g. "not counted")."""

    raw: bytes
    pos: int
    act: float
    alpha: float = 0.0
    classes: tuple[str, ...] = ()
    label: str | None = None
    note: str = ""


def _background(alphas: Sequence[float], rgb: str) -> str:
    if len(alphas) == 1:
        return f"background:rgba({rgb},{alphas[0]:.3f})" if alphas[0] > 0 else ""
    if not any(a > 0 for a in alphas):
        return ""
    step = 100 / len(alphas)
    stops = ",".join(
        f"rgba({rgb},{a:.3f}) {i * step:.2f}% {(i + 1) * step:.2f}%" for i, a in enumerate(alphas)
    )
    return f"background:linear-gradient(to right,{stops})"


def tokens_html(toks: Sequence[Tok], rgb: str = SHADE_RGB, breaks: bool = True) -> str:
    """The one token renderer: a sequence of tokens as running text (core/tokens.py
    ``text_spans``). Each span is one ``.tok`` element; a character split over several tokens is
    drawn once across them, shaded left to right with each token's own activation, and its
    hover lists every token with its own value."""
    from .tokens import text_spans, token_display

    out = []
    for span in text_spans([t.raw for t in toks]):
        members = toks[span.first : span.last + 1]
        classes = ["tok"] + sorted({c for t in members for c in t.classes})
        if len(members) > 1:
            classes.append("multi")
        info = "  |  ".join(
            f"token {token_display(t.raw)} · position {t.pos} · activation {t.act:.4f}"
            + (f" · {t.note}" if t.note else "")
            for t in members
        )
        labels = [t.label for t in members if t.label]
        text = html.escape(labels[0]) if labels else token_html(span.text, breaks=breaks)
        style = _background([t.alpha for t in members], rgb)
        pos = f"{members[0].pos}" + (f"–{members[-1].pos}" if len(members) > 1 else "")
        acts = " / ".join(f"{t.act:.4f}" for t in members)
        out.append(
            f'<span class="{" ".join(classes)}" data-pos="{pos}" data-act="{acts}" '
            f'data-info="{html.escape(info, quote=True)}" title="{html.escape(info, quote=True)}"'
            + (f' style="{style}"' if style else "")
            + f">{text}</span>"
        )
    return "".join(out)
