"""Tokens read as the original text (issue 16, item 1): raw bytes per token, characters split
over several tokens shown once across them, only incomplete UTF-8 as \\xNN, control characters
visible; the same rules for one token alone (logit tables) and in HTML."""

from __future__ import annotations

import html
import re

import pytest
import regex

from sae_specialists.core.html import Tok, tokens_html
from sae_specialists.core.tokens import (
    bytes_to_unicode,
    is_byte_level,
    text_spans,
    token_bytes,
    token_display,
    token_text,
)

SAMPLES = {
    "chinese": "稀疏自编码器的特征。",
    "russian": "Привет, как дела?",
    "arabic": "مرحبا بالعالم",
    "emoji_zwj": "team: 👩🏽‍💻👨‍👩‍👧‍👦 done",
    "skin_tones": "ok 👍🏿👋🏻",
    "flags": "🇩🇪🇯🇵",
    "math": "∫₀^∞ e^(−x²) dx = √π/2, ∀x ∈ ℝ",
    "combining": "café naïve",
}


def every_split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def clusters(text: str) -> list[str]:
    return regex.findall(r"\X", text)


@pytest.mark.parametrize("name", sorted(SAMPLES))
@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_split_characters_read_as_the_original(name, size):
    text = SAMPLES[name]
    raws = every_split(text.encode("utf-8"), size)
    spans = text_spans(raws)
    assert "".join(s.text for s in spans) == text
    # every token is in exactly one span, in order
    assert [t for s in spans for t in range(s.first, s.last + 1)] == list(range(len(raws)))
    # spans end on grapheme-cluster boundaries: no cluster is cut
    boundaries = {0}
    for c in clusters(text):
        boundaries.add(max(boundaries) + len(c))
    end = 0
    for s in spans:
        end += len(s.text)
        assert end in boundaries, (s, text)
    # a span covers several tokens only when a character is split between them
    for s in spans:
        if s.last > s.first:
            data = b"".join(raws[s.first : s.last + 1])
            cuts = [sum(len(r) for r in raws[s.first : t + 1]) for t in range(s.first, s.last)]
            decoded = [data[:c].decode("utf-8", errors="strict") for c in cuts if _ok(data[:c])]
            assert len(decoded) < len(cuts) or any(
                not _cluster_boundary(s.text, len(d)) for d in decoded
            )


def _ok(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _cluster_boundary(text: str, n_chars: int) -> bool:
    total = 0
    for c in clusters(text):
        if total == n_chars:
            return True
        total += len(c)
    return total == n_chars


def test_only_incomplete_sequences_are_escaped():
    zhong = "中".encode()  # e4 b8 ad
    assert token_text(zhong[:2]) == "\\xe4\\xb8"  # alone, a token is genuinely incomplete
    assert [s.text for s in text_spans([zhong[:2], zhong[2:]])] == ["中"]
    # a truncated text and a stray continuation byte stay escaped, the rest reads normally
    spans = text_spans([b"ab", zhong[:2]])
    assert [s.text for s in spans] == ["ab", "\\xe4\\xb8"]
    assert [s.text for s in text_spans([b"\xad", b"x"])] == ["\\xad", "x"]
    assert token_text(b"\xff\xfe") == "\\xff\\xfe"
    assert "\ufffd" not in token_text(zhong[:1] + b"a")


def test_control_characters_are_visible():
    assert token_text(b"a\x00b\x1b\x7f") == "a\\x00b\\x1b\\x7f"
    assert token_text("\u0085".encode()) == "\\u0085"  # C1: not to be read as the byte 0x85
    assert token_text(b"\t\n\r ") == "\t\n\r "  # whitespace stays, drawn with markers
    assert token_display(b" \n\t\r") == "␣↵⇥␍"
    assert token_display(b"") == "∅"
    assert token_display("\u200d".encode()) == "\u200d"  # ZWJ is not a control character


def _bpe_tokenizer(tmp_path, byte_fallback: bool):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    corpus = ["the quick brown fox jumps over the lazy dog", "def main(): return None"] * 20
    if byte_fallback:  # Llama-2 / Gemma style: ▁ for spaces, <0xNN> byte tokens
        tok = Tokenizer(models.BPE(byte_fallback=True, unk_token=None))
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Sequence(
            [decoders.Metaspace(), decoders.ByteFallback(), decoders.Fuse()]
        )
        alphabet = [f"<0x{b:02X}>" for b in range(256)]
        trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>"] + alphabet)
    else:  # GPT-2 style byte-level BPE
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
    tok.train_from_iterator(corpus, trainer)
    bos = "<s>" if byte_fallback else "<|endoftext|>"
    path = tmp_path / ("sp" if byte_fallback else "bl")
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos).save_pretrained(str(path))
    return AutoTokenizer.from_pretrained(str(path))


@pytest.mark.parametrize("byte_fallback", [False, True], ids=["byte-level", "sentencepiece"])
def test_token_bytes_rebuild_every_text(tmp_path, byte_fallback):
    tokenizer = _bpe_tokenizer(tmp_path, byte_fallback)
    assert is_byte_level(tokenizer) is (not byte_fallback)
    for text in SAMPLES.values():
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        raw = token_bytes(tokenizer, ids)
        data = b"".join(raw[i] for i in ids)
        expected = text.encode("utf-8")
        if byte_fallback:  # Metaspace prepends a space to the text
            expected = b" " + expected
        assert data == expected, text
        spans = text_spans([raw[i] for i in ids])
        assert "".join(s.text for s in spans) == expected.decode("utf-8")
    bos = tokenizer.bos_token_id
    assert token_bytes(tokenizer, [bos])[bos] == tokenizer.bos_token.encode()


def test_gpt2_byte_table_round_trips():
    table = bytes_to_unicode()
    assert len(table) == len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[0xAD] == "Ń"


def test_html_draws_split_characters_once_with_each_tokens_value():
    text = "x 中文"
    data = text.encode()
    raws = [data[:2], data[2:4], data[4:6], data[6:]]  # b"x ", e4 b8, ad e6, 96 87
    toks = [Tok(r, i, act=float(i), alpha=i / 3) for i, r in enumerate(raws)]
    out = tokens_html(toks)
    spans = re.findall(r'<span class="([^"]*)"([^>]*)>(.*?)</span>', out)
    assert [html.unescape(t) for _, _, t in spans] == ["x ", "中文"]
    assert "data-info" not in spans[0][1]  # one token: TOKEN_JS builds its line
    cls, attrs, _ = spans[1]
    info = re.search(r'data-info="([^"]*)"', attrs).group(1)
    assert "multi" in cls.split()
    info = html.unescape(info)
    for i in (1, 2, 3):
        assert f"position {i} · activation {float(i):.4f}" in info
    assert "linear-gradient" in out and "rgba(240,140,0,1.000)" in out


def test_decoder_joins_the_bytes_of_the_ids(tmp_path):
    from sae_specialists.core.tokens import Decoder

    tokenizer = _bpe_tokenizer(tmp_path, byte_fallback=False)
    decode = Decoder(tokenizer)
    for text in SAMPLES.values():
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert decode(ids) == text
        cut = ids[: len(ids) // 2]
        assert "\ufffd" not in decode(cut)


def test_demo_tokenizer_tokens_read_as_the_text(tmp_path):
    """The offline demo's byte-level BPE tokenizer: every sample's token bytes rebuild it, its
    split characters are whole spans, and no token alone reads U+FFFD."""
    from sae_specialists.demo.vocab import build_tokenizer

    tokenizer = build_tokenizer(tmp_path / "demo-tokenizer")
    assert is_byte_level(tokenizer)
    split = 0
    for text in SAMPLES.values():
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        raw = token_bytes(tokenizer, ids)
        assert b"".join(raw[i] for i in ids) == text.encode("utf-8")
        spans = text_spans([raw[i] for i in ids])
        assert "".join(s.text for s in spans) == text
        split += sum(s.last > s.first for s in spans)
        assert not any("\ufffd" in token_text(raw[i]) for i in ids)
    assert split > 10  # the demo vocabulary splits these scripts into bytes
