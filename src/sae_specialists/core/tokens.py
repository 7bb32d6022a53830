"""Token strings: GPT-2's byte-level BPE alphabet, and tokens as readable text (whitespace made
visible, undecodable bytes shown as escapes)."""

from __future__ import annotations

from .html import EMPTY_TOKEN, WHITESPACE


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

def readable_token(token: str) -> str:
    """A token as plain text with every space, newline, tab and CR made visible (␣ ↵ ⇥ ␍);
    the empty token is ∅. Other characters are kept (the replacement character of an
    incomplete UTF-8 sequence included)."""
    if token == "":
        return EMPTY_TOKEN
    return "".join(WHITESPACE.get(ch, ch) for ch in token)


def byte_level_token(raw: str, byte_decoder: dict[str, int] | None) -> str | None:
    """Decode a byte-level BPE token (GPT-2 alphabet) to text, with incomplete UTF-8 bytes as
    ``\\xNN`` escapes; None when ``raw`` is not in that alphabet."""
    if byte_decoder is None or any(ch not in byte_decoder for ch in raw):
        return None
    data = bytes(byte_decoder[ch] for ch in raw)
    return data.decode("utf-8", errors="backslashreplace")
