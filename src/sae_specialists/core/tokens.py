r"""Tokens as text (docs/data-contract.md, "Token bytes"): each token's raw bytes, and the one
way every page, table and summary turns them into text.

- ``token_bytes(tokenizer, ids)``: the bytes each token stands for (byte-level BPE: its
  vocabulary entry through GPT-2's byte alphabet; SentencePiece: ``▁`` is a space and
  ``<0xNN>`` one byte; special tokens: their text).
- ``text_spans(raws)``: a sequence of tokens as text. The bytes of consecutive tokens are
  decoded together, so a character (or a grapheme cluster: emoji with ZWJ or skin tone,
  a letter with combining marks) split over several tokens is one span covering them; only
  bytes that do not form a complete UTF-8 character show as ``\xNN``.
- ``token_text(raw)``: one token on its own (logit tables), by the same rules.
- Control characters are made visible (``\x00``..``\x1f`` and ``\x7f``; C1 controls as
  ``\u0080``..``\u009f``, so they cannot be mistaken for raw bytes), and so are the
  bidirectional formatting characters (``\u202e`` ..., which would reorder the text drawn around
  them) and lone surrogates; space, newline, tab and CR are kept as characters and drawn as
  ␣ ↵ ⇥ ␍ where whitespace must be visible. ``html.token_html`` applies the same rules to any
  text a page draws (prompts, continuations).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# Whitespace markers: the one set of glyphs used in every page and table.
WHITESPACE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}
EMPTY_TOKEN = "∅"


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


# -- token bytes ---------------------------------------------------------------------------------

_SP_BYTE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
SP_SPACE = "\u2581"  # ▁, SentencePiece's space


def is_byte_level(tokenizer) -> bool:
    """Whether the tokenizer's vocabulary is written in GPT-2's byte alphabet (byte-level BPE:
    GPT-2, GPT-NeoX/Pythia, Llama 3, Qwen, ...)."""
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    ids = [i for i in range(min(len(tokenizer), 512)) if i not in special]
    pieces = [p for p in tokenizer.convert_ids_to_tokens(ids) if p]
    return bool(pieces) and all(ch in UNICODE_TO_BYTE for p in pieces for ch in p)


def token_bytes(tokenizer, ids: Sequence[int]) -> dict[int, bytes]:
    """The raw bytes of each token id (see the module doc); ids past the tokenizer's vocabulary
    (a padded unembedding) have no bytes."""
    ids = sorted({int(i) for i in ids})
    n_vocab = len(tokenizer)
    known = [i for i in ids if i < n_vocab]
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    byte_level = is_byte_level(tokenizer)
    out = {i: b"" for i in ids}
    for i, piece in zip(known, tokenizer.convert_ids_to_tokens(known), strict=True):
        if piece is None:
            continue
        if i in special:
            out[i] = piece.encode("utf-8")
        elif byte_level and all(ch in UNICODE_TO_BYTE for ch in piece):
            out[i] = bytes(UNICODE_TO_BYTE[ch] for ch in piece)
        elif match := _SP_BYTE.fullmatch(piece):
            out[i] = bytes([int(match.group(1), 16)])
        elif SP_SPACE in piece:
            out[i] = piece.replace(SP_SPACE, " ").encode("utf-8")
        else:
            out[i] = tokenizer.decode([i]).encode("utf-8")
    return out


# -- bytes as text ---------------------------------------------------------------------------------


# bidirectional formatting characters: drawn raw they reorder the text around them (U+202E
# shows what follows backwards), so a page could show a text other than the one analysed
BIDI_CONTROLS = frozenset([0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])


def visible_char(ch: str) -> str:
    """``ch``, or its escape when it is an invisible control character, a bidirectional
    formatting character or a lone surrogate (see the module doc)."""
    cp = ord(ch)
    if (cp < 0x20 and ch not in "\n\t\r") or cp == 0x7F:
        return f"\\x{cp:02x}"
    if 0x80 <= cp <= 0x9F or cp in BIDI_CONTROLS or 0xD800 <= cp <= 0xDFFF:
        return f"\\u{cp:04x}"
    return ch


@dataclass(frozen=True)
class Span:
    """Text covering tokens ``first``..``last`` (indices into the sequence, inclusive)."""

    first: int
    last: int
    text: str


def _utf8_length(lead: int) -> int:
    if lead < 0x80:
        return 1
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0  # a continuation byte or a byte UTF-8 never uses


def _pieces(raws: Sequence[bytes]) -> list[tuple[str, int, int, bool]]:
    """(text, first token, last token, is a character) for each character or stray byte."""
    data = b"".join(raws)
    owner = [t for t, raw in enumerate(raws) for _ in raw]
    out, p = [], 0
    while p < len(data):
        n = _utf8_length(data[p])
        try:
            ch = data[p : p + n].decode("utf-8") if n and p + n <= len(data) else None
        except UnicodeDecodeError:
            ch = None
        if ch is None:
            out.append((f"\\x{data[p]:02x}", owner[p], owner[p], False))
            p += 1
        else:
            out.append((ch, owner[p], owner[p + n - 1], True))
            p += n
    return out


def text_spans(raws: Sequence[bytes]) -> list[Span]:
    """The tokens as text spans, in order, covering every token once (see the module doc). A
    token without bytes is an empty span of its own."""
    import regex  # grapheme clusters (\X); imported here: most jobs never draw tokens

    pieces = _pieces(raws)
    spans: list[list] = []  # [first, last, text]
    i = 0
    while i < len(pieces):
        if not pieces[i][3]:
            text, first, last, _ = pieces[i]
            spans.append([first, last, text])
            i += 1
            continue
        j = i
        while j < len(pieces) and pieces[j][3]:
            j += 1
        run = pieces[i:j]
        chars = "".join(p[0] for p in run)
        k = 0
        for cluster in regex.findall(r"\X", chars):
            members = run[k : k + len(cluster)]
            k += len(cluster)
            text = "".join(visible_char(ch) for ch in cluster)
            spans.append([members[0][1], members[-1][2], text])
        i = j
    merged: list[list] = []
    for first, last, text in spans:
        if merged and first <= merged[-1][1]:  # shares a token with the previous span
            merged[-1][1] = max(merged[-1][1], last)
            merged[-1][2] += text
        else:
            merged.append([first, last, text])
    covered = {t for first, last, _ in merged for t in range(first, last + 1)}
    merged += [[t, t, ""] for t in range(len(raws)) if t not in covered]
    return [Span(first, last, text) for first, last, text in sorted(merged)]


def token_text(raw: bytes) -> str:
    """One token's bytes as text on their own (see the module doc)."""
    return "".join(span.text for span in text_spans([raw]))


def token_display(raw: bytes) -> str:
    """One token as plain text with its whitespace visible (␣ ↵ ⇥ ␍, ∅ when empty): the form
    of the logit tables and the summaries."""
    return readable_token(token_text(raw))


class Decoder:
    """Token ids -> text by the rules above (the bytes of the ids decoded together), for code
    that holds a tokenizer (e.g. generated continuations); token bytes are cached."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.raw: dict[int, bytes] = {}

    def __call__(self, ids: Sequence[int]) -> str:
        ids = [int(i) for i in ids]
        missing = [i for i in ids if i not in self.raw]
        if missing:
            self.raw.update(token_bytes(self.tokenizer, missing))
        return "".join(span.text for span in text_spans([self.raw[i] for i in ids]))
