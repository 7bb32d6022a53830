"""The one HTML page shell (head, shared CSS) of every page the workflow writes, and the one way a
token is drawn in HTML. Pages are self-contained: no external file, no network."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .tokens import EMPTY_TOKEN, WHITESPACE, visible_char

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

# Hover / click read-out of a token span into #info, and its tooltip (title), built when the page
# loads from what tokens_html writes: data-info (a span of several tokens, or one with a note:
# every token of the span with text, position, activation) as it is; else "token T · position P
# · activation A" with T = data-tok, or the span's text with its whitespace made visible
# (core/tokens.py readable_token), P = data-pos, or one after the previous token of the same
# run of text, A = data-act, or 0.
TOKEN_JS = """
(function(){
  var info=document.getElementById('info');
  var WS={' ':'\u2423','\\n':'\u21b5','\\t':'\u21e5','\\r':'\u240d'};
  function readable(t){
    return t===''?'\u2205':t.replace(/[ \\n\\t\\r]/g,function(c){return WS[c];});
  }
  var next=0;
  document.querySelectorAll('.tok').forEach(function(el){
    var pos=el.getAttribute('data-pos');
    if(pos===null){pos=String(next);}
    next=parseInt(/(\\d+)$/.exec(pos)[1],10)+1;
    var tok=el.getAttribute('data-tok');
    var line=el.getAttribute('data-info')||('token '+(tok===null?readable(el.textContent):tok)+
      ' \u00b7 position '+pos+' \u00b7 activation '+(el.getAttribute('data-act')||'0.0000'));
    el.title=line;
    el.addEventListener('mouseenter',function(){info.textContent=line;});
    el.addEventListener('click',function(){
      document.querySelectorAll('.tok.sel').forEach(function(s){s.classList.remove('sel');});
      el.classList.add('sel');info.textContent=line;
    });
  });
})();
"""


def page(title: str, body: Iterable[str], css: str = "", script: str = "") -> str:
    """A complete page: the shell, ``body``'s parts one per line, the optional script."""
    head = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(''.join(map(visible_char, title)))}</title>"
        f"<style>{BASE_CSS}{css}</style></head><body>"
    )
    tail = (f"<script>{script}</script>" if script else "") + "</body></html>"
    return "\n".join([head, *body, tail])


def token_html(token: str, breaks: bool = True) -> str:
    """HTML for a token, or any text a page draws, inside running text: escaped; control and
    bidirectional formatting characters shown as escapes (core/tokens.py ``visible_char``),
    never raw; spaces stay spaces (so text reads naturally) except in whitespace-only tokens,
    which show ␣; newlines, tabs and CR always show a grey marker (with ``breaks``, a newline or
    tab is also kept after its marker, so pre-wrapped text keeps its layout)."""
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
            out.append(html.escape(visible_char(ch)))
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


def _js_display(text_html: str) -> str:
    """The token text TOKEN_JS reads from a span: its text content, whitespace made visible."""
    import re

    from .tokens import readable_token

    return readable_token(html.unescape(re.sub(r"<[^>]*>", "", text_html)))


# attribute of a token span <- its key in a compact item (token_items)
ITEM_ATTRS = {"p": "data-pos", "a": "data-act", "t": "data-tok", "i": "data-info", "s": "style"}


def token_items(toks: Sequence[Tok], rgb: str = SHADE_RGB, breaks: bool = True) -> list:
    """The token spans of ``toks`` (core/tokens.py ``text_spans``) as compact items: a span's
    inner HTML alone (a plain ``.tok`` span), [inner HTML, activation, alpha] (a shaded token
    and nothing else: its ``data-act`` and its ``rgba`` background), or [inner HTML,
    {key: value}] with the keys of ``ITEM_ATTRS`` and "c" (its classes besides ``tok``).
    ``tokens_html`` writes them as spans; a page too large for that draws them with
    TOKEN_DRAW_JS (the same elements).

    A span of one token without a note carries its activation ("a") only when it is not 0,
    its position ("p") only when it does not follow the previous span's last position (the
    first span always has it), its display form ("t") only when that is not its text with the
    whitespace made visible; TOKEN_JS builds the hover line and tooltip from them (the same
    line as "i"'s). A span of several tokens carries its members' display forms ("d"), from
    which its full line (``data-info``) is built, or, with a note, that line itself ("i")."""
    from .tokens import text_spans, token_display

    items: list = []
    expected = None  # the position a span without "p" is read as
    for span in text_spans([t.raw for t in toks]):
        members = toks[span.first : span.last + 1]
        extra = sorted({c for t in members for c in t.classes})
        if len(members) > 1:
            extra.append("multi")
        labels = [t.label for t in members if t.label]
        text = html.escape(labels[0]) if labels else token_html(span.text, breaks=breaks)
        style = _background([t.alpha for t in members], rgb)
        attrs: dict[str, str] = {}
        if extra:
            attrs["c"] = " ".join(extra)
        if len(members) > 1 or members[0].pos != expected:
            attrs["p"] = f"{members[0].pos}" + (f"–{members[-1].pos}" if len(members) > 1 else "")
        expected = members[-1].pos + 1
        if len(members) == 1 and not members[0].note and not labels:
            t = members[0]
            if t.act != 0:
                attrs["a"] = f"{t.act:.4f}"
            display = token_display(t.raw)
            if display != _js_display(text):
                attrs["t"] = display
        else:
            attrs["a"] = " / ".join(f"{t.act:.4f}" for t in members)
            contiguous = members[-1].pos - members[0].pos == len(members) - 1
            if contiguous and not any(t.note for t in members):
                attrs["d"] = [token_display(t.raw) for t in members]  # "i" is built from it
            else:
                attrs["i"] = "  |  ".join(
                    f"token {token_display(t.raw)} · position {t.pos} · activation {t.act:.4f}"
                    + (f" · {t.note}" if t.note else "")
                    for t in members
                )
        shaded = len(members) == 1 and members[0].alpha > 0
        if shaded and set(attrs) == {"a"}:  # the common shaded token: [text, act, alpha]
            items.append([text, attrs["a"], f"{members[0].alpha:.3f}"])
            continue
        if style and 1 < len(members) < GRADIENT_MAX:  # the gradient's alphas: "s" built
            attrs["g"] = [f"{t.alpha:.3f}" for t in members]
        elif style:
            attrs["s"] = style
        items.append([text, attrs] if attrs else text)
    return items


def _info(attrs: dict) -> str:
    """The hover line of a span of several tokens given by their display forms ("d"), first
    position ("p") and activations ("a"); TOKEN_DRAW_JS builds the same line."""
    first = int(attrs["p"].split("–")[0])
    return "  |  ".join(
        f"token {d} · position {first + k} · activation {a}"
        for k, (d, a) in enumerate(zip(attrs["d"], attrs["a"].split(" / "), strict=True))
    )


# Below this many tokens in a span, its gradient's stops (multiples of 100 / n, 2 decimals) never
# fall on a rounding tie, so JavaScript's toFixed writes the same stops as Python's format.
GRADIENT_MAX = 32


def _gradient(alphas: Sequence[str], rgb: str) -> str:
    """_background's gradient from its alphas as written ("0.806"); TOKEN_DRAW_JS builds the
    same string."""
    step = 100 / len(alphas)
    stops = ",".join(
        f"rgba({rgb},{a}) {i * step:.2f}% {(i + 1) * step:.2f}%" for i, a in enumerate(alphas)
    )
    return f"background:linear-gradient(to right,{stops})"


def _expand(item: str | list, rgb: str) -> tuple[str, dict]:
    """A compact item as (inner HTML, attributes by key)."""
    if isinstance(item, str):
        return item, {}
    if len(item) == 3:  # [text, act, alpha]: a shaded token
        return item[0], {"a": item[1], "s": f"background:rgba({rgb},{item[2]})"}
    attrs = item[1]
    if "g" in attrs:
        attrs = {**attrs, "s": _gradient(attrs["g"], rgb)}
    return item[0], attrs


def item_html(item: str | list, rgb: str = SHADE_RGB) -> str:
    """One compact item (token_items) as its ``.tok`` span."""
    text, attrs = _expand(item, rgb)
    if "d" in attrs:
        attrs = {**attrs, "i": _info(attrs)}
    classes = "tok" + (f" {attrs['c']}" if "c" in attrs else "")
    parts = [f'class="{classes}"'] + [
        f'{name}="{html.escape(attrs[key], quote=True)}"'
        for key, name in ITEM_ATTRS.items()
        if key in attrs
    ]
    return f"<span {' '.join(parts)}>{text}</span>"


def tokens_html(toks: Sequence[Tok], rgb: str = SHADE_RGB, breaks: bool = True) -> str:
    """The one token renderer: a sequence of tokens as running text (core/tokens.py
    ``text_spans``). Each span is one ``.tok`` element; a character split over several tokens is
    drawn once across them, shaded left to right with each token's own activation, and its
    hover lists every token with its own value. Compact (``token_items``): ~30 bytes a token
    without activation; TOKEN_JS completes each span's hover line and tooltip."""
    return "".join(item_html(item, rgb) for item in token_items(toks, rgb, breaks))


# Draws the compact items of ``tokens_json`` into every element with a data-items attribute
# (its index in the list), before TOKEN_JS runs: the elements tokens_html would write.
TOKEN_DRAW_JS = """
(function(){
  var source=document.getElementById('token-items');
  var data=JSON.parse(source.textContent),rgb=source.getAttribute('data-rgb');
  var NAMES={p:'data-pos',a:'data-act',t:'data-tok',i:'data-info',s:'style'};
  function expand(it){
    if(typeof it==='string'){return {};}
    if(it.length===3){return {a:it[1],s:'background:rgba('+rgb+','+it[2]+')'};}
    var attrs=it[1];
    if(attrs.g){
      var n=attrs.g.length,step=100/n;
      attrs.s='background:linear-gradient(to right,'+attrs.g.map(function(a,i){
        return 'rgba('+rgb+','+a+') '+(i*step).toFixed(2)+'% '+((i+1)*step).toFixed(2)+'%';
      }).join(',')+')';
    }
    return attrs;
  }
  document.querySelectorAll('[data-items]').forEach(function(box){
    var frag=document.createDocumentFragment();
    data[+box.getAttribute('data-items')].forEach(function(it){
      var el=document.createElement('span'),attrs=expand(it);
      el.className='tok'+(attrs.c?' '+attrs.c:'');
      if(attrs.d){
        var first=parseInt(attrs.p,10),acts=attrs.a.split(' / ');
        attrs.i=attrs.d.map(function(d,k){
          return 'token '+d+' \u00b7 position '+(first+k)+' \u00b7 activation '+acts[k];
        }).join('  |  ');
      }
      for(var k in NAMES){if(k in attrs){el.setAttribute(NAMES[k],attrs[k]);}}
      el.innerHTML=typeof it==='string'?it:it[0];
      frag.appendChild(el);
    });
    box.appendChild(frag);
  });
})();
"""


def tokens_json(runs: Sequence[list], rgb: str = SHADE_RGB) -> str:
    """The compact items of several runs of tokens (each ``token_items``) as the page's
    ``<script type="application/json" id="token-items">`` (TOKEN_DRAW_JS reads it): ~6 bytes a
    token without activation instead of ~30."""
    import json

    text = json.dumps(list(runs), ensure_ascii=False, separators=(",", ":"))
    return (
        f'<script type="application/json" id="token-items" data-rgb="{rgb}">'
        + text.replace("</", "<\\/")
        + "</script>"
    )
