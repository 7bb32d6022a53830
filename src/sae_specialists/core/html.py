"""The one HTML page shell (head, shared CSS) of every page the workflow writes, and the one way a
token is drawn in HTML. Pages are self-contained: no external file, no network."""

from __future__ import annotations

import html
from collections.abc import Iterable

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

# Hover / click read-out of a token span (data-tok, data-pos, data-act) into #info.
TOKEN_JS = """
(function(){
  var info=document.getElementById('info');
  function show(el){
    info.textContent='token '+el.getAttribute('data-tok')+'  ·  position '+
      el.getAttribute('data-pos')+'  ·  activation '+el.getAttribute('data-act');
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

# Whitespace markers: the one set of glyphs used in every page and table.
WHITESPACE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}
EMPTY_TOKEN = "∅"


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
