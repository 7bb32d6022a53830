"""Token strings: GPT-2's byte-level BPE alphabet, and tokens as readable text (whitespace made
visible, undecodable bytes shown as escapes)."""

from __future__ import annotations

import html


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level alphabet (the one tokenizers' ByteLevel pre-tokenizer uses)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


UNICODE_TO_BYTE = {v: k for k, v in bytes_to_unicode().items()}

VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}


def readable_token(token: str) -> str:
    """A token as plain text with every space, newline, tab and CR made visible (␣ ↵ ⇥ ␍);
    the empty token is ∅. Other characters are kept (the replacement character of an
    incomplete UTF-8 sequence included)."""
    if token == "":
        return "∅"
    return "".join(VISIBLE.get(ch, ch) for ch in token)


def token_html(token: str, breaks: bool = True) -> str:
    """HTML for a token inside running text: escaped; spaces stay spaces (so text reads
    naturally) except in whitespace-only tokens, which show ␣; newlines, tabs and CR always show
    a grey marker (with ``breaks``, a newline also breaks the line)."""
    if token == "":
        return '<span class="ws">∅</span>'
    only_ws = token.strip() == ""
    out = []
    for ch in token:
        if ch == "\n":
            out.append('<span class="ws">↵</span>' + ("\n" if breaks else ""))
        elif ch in ("\t", "\r"):
            out.append(f'<span class="ws">{VISIBLE[ch]}</span>')
        elif ch == " " and only_ws:
            out.append('<span class="ws">␣</span>')
        else:
            out.append(html.escape(ch))
    return "".join(out)


def byte_level_token(raw: str, byte_decoder: dict[str, int] | None) -> str | None:
    """Decode a byte-level BPE token (GPT-2 alphabet) to text, with incomplete UTF-8 bytes as
    ``\\xNN`` escapes; None when ``raw`` is not in that alphabet."""
    if byte_decoder is None or any(ch not in byte_decoder for ch in raw):
        return None
    data = bytes(byte_decoder[ch] for ch in raw)
    return data.decode("utf-8", errors="backslashreplace")
