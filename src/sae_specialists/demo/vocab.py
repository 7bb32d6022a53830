"""The demo's tokenizer and residual-stream layout: which token carries which planted direction.

d_model = 64, one planted meaning per dimension (``DIM``), the rest random token identity:

- 0-6: one *marker* dimension per study category (``CATEGORY_DIMS``), 1.0 on the tokens of
  ``marker_categories``. For ``conversational`` and ``non_english`` it is only the token-level
  cue that block 0 turns into the category direction (``WRITTEN``): no SAE feature reads it.
- 7: BOS only; 8: every other token ("always").
- 9 ``conversational`` and 10 ``non_english``: the directions block 0 *writes* (attention and
  MLP respectively; demo/model.py); never in the embedding.
- 11 ``poetry``: 1.0 on every poetry marker (read by no SAE feature); 12-15: one dimension per
  poetry marker group (``POETRY_GROUPS``), read by one weak feature each.
- 16 ``latex`` / 17 ``arithmetic``: the two kinds of math markers (``math_kind``), read by the
  two children of the narrow math feature in the wide SAE.
- 18-63: random token identity (``identity_vector``, seeded by the token's bytes, so any module
  can rebuild a token's direction without the tokenizer).

The *meaning* plant (the surface stage): ``MEANING_WORDS`` are arithmetic spelled out in words
(`` plus``, `` equals``...). They are added to the trained vocabulary as whole-word tokens (new
ids after the trained ones; ``build_tokenizer``) and carry the ``math`` dimension without any
math marker: the math specialist reads a direction that both the markers and these words write,
so it fires on arithmetic written in words. None of them occurs in the demo's texts, so every
demo text tokenises exactly as before and no planted outcome of the texts moves
(tests/test_demo.py).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..core.tokens import UNICODE_TO_BYTE

D_MODEL = 64
VOCAB_SIZE = 1024
BOS_TOKEN = "<|endoftext|>"
CATEGORY_DIMS = ("python", "urls", "math", "non_english", "social", "formal", "conversational")
WRITTEN = {"conversational": "attn", "non_english": "mlp"}  # category -> block-0 writer
POETRY_GROUPS = {
    "archaic": "thou Thou thee thy thine Thine doth dost hath Hath hast ere".split(),
    "night": "twilight dusk midnight lantern starlight".split(),
    "flora": "meadow petals Petals willow blossom".split(),
    "sorrow": "sorrow grief longing weep mourn tears".split(),
}
DIM = {
    **{c: i for i, c in enumerate(CATEGORY_DIMS)},
    "bos": 7,
    "always": 8,
    "conversational_written": 9,
    "non_english_written": 10,
    "poetry": 11,
    **{f"poetry_{g}": 12 + i for i, g in enumerate(POETRY_GROUPS)},
    "latex": 16,
    "arithmetic": 17,
}
FIRST_IDENTITY_DIM = 18
BOS_DIM, ALWAYS_DIM = DIM["bos"], DIM["always"]

WORD_MARKERS = {
    "python": set(
        "def self return import lambda elif None True False class async await yield print "
        "from __ ): self.".split()
    ),
    "formal": set(
        "shall pursuant hereby herein hereinafter whereas thereof therein thereto hereto "
        "hereunder accordance notwithstanding aforementioned Agreement Party Parties parties "
        "obligations respectfully Committee provisions Section Article Board Company Supplier "
        "compliance furthermore Furthermore Moreover moreover therefore Therefore accordingly "
        "Accordingly Sincerely Dear Madam Sir undersigned commencement termination Memorandum "
        "MEMORANDUM Abstract investigate propose approved resolution Court plaintiff defendant "
        "appellant hereinafter applicable thereunder Licensee Licensor".split()
    ),
    "conversational": set(
        "hey Hey yeah Yeah gonna wanna um Um uh okay ok kinda gotta haha yep nope dunno Nah nah "
        "lemme gimme hmm Hmm Oh".split()  # not u/ur: fragments of many words
    ),
    "social": set("lol omg OMG RT # @ lmao LOL".split()),
    "urls": set("http https :// www .com .org .io % & ? href".split()),
    "math": set("+ ^ \\ frac sum int sqrt pm cdot infty lim dx theta alpha".split()),
    "poetry": {w for words in POETRY_GROUPS.values() for w in words},
}
MEANING_CATEGORY = "math"
MEANING_WORDS = {
    MEANING_CATEGORY: (
        "plus minus times equals squared square divided multiplied subtract halve".split()
    ),
}
LATEX_WORDS = set("frac sum int sqrt pm cdot infty lim theta alpha".split())
# Lottery words (demo/saes.py), kept whole by the tokenizer. ' dinner' is in one conversational
# text and two recipes (the recipes winner). The others were drawn in the order of numpy
# default_rng(0).permutation over the sorted words of resources/demo_texts that occur, always as
# a whole word after a space, in 2-4 texts, at most one per category (never poetry), keeping a
# word while no category reaches 5 lottery words.
LOTTERY_WORDS = (
    " dinner",
    " meeting",
    " were",
    " table",
    " else",
    " both",
    " pour",
    " four",
    " pizza",
)


def token_bytes(token: str) -> bytes:
    return bytes(UNICODE_TO_BYTE[ch] for ch in token if ch in UNICODE_TO_BYTE)


def bpe_token(text: str) -> str:
    """The byte-level BPE spelling of ``text`` (e.g. ' fox' -> 'Ġfox')."""
    from ..core.tokens import bytes_to_unicode

    table = bytes_to_unicode()
    return "".join(table[b] for b in text.encode("utf-8"))


def marker_categories(token: str) -> set[str]:
    """Categories whose marker this (byte-level BPE) token carries."""
    raw = token_bytes(token)
    text = raw.decode("utf-8", errors="ignore")
    word = text.strip()
    found = {c for c, words in WORD_MARKERS.items() if word in words}
    if not text.startswith(" "):  # chatty words must be whole words, not fragments ("sum")
        found.discard("conversational")
    if "_" in word or "):" in word:
        found.add("python")
    if "://" in word or word.startswith(("http", "www")):
        found.add("urls")
    if any(ch in word for ch in "+^\\∫∑√π≤≥∞∂±×÷"):
        found.add("math")
    if 0xF0 in raw or any(ch in word for ch in "#@"):
        found.add("social")
    # Lead bytes of 2-byte (Latin accents, Greek, Cyrillic, Arabic...) and 3-byte (Devanagari,
    # CJK, Hangul) sequences; 0xE2 (general punctuation, math operators) is left out.
    if any(0xC3 <= b <= 0xDF or b == 0xE0 or 0xE3 <= b <= 0xED for b in raw):
        found.add("non_english")
    return found


def meaning_categories(token: str) -> set[str]:
    """Categories whose meaning this token spells without their markers (``MEANING_WORDS``:
    whole words after a space)."""
    text = token_bytes(token).decode("utf-8", errors="ignore")
    if not text.startswith(" "):
        return set()
    return {c for c, words in MEANING_WORDS.items() if text[1:] in words}


def meaning_tokens() -> list[str]:
    """The byte-level spelling of every meaning word (`` plus`` -> ``Ġplus``), in a fixed order:
    the tokens ``build_tokenizer`` adds after the trained vocabulary."""
    return [bpe_token(f" {w}") for c in sorted(MEANING_WORDS) for w in MEANING_WORDS[c]]


def math_kind(token: str) -> str | None:
    """'latex' (a backslash or a LaTeX command word) or 'arithmetic' (any other math marker)
    for a math marker token; None otherwise."""
    if "math" not in marker_categories(token):
        return None
    word = token_bytes(token).decode("utf-8", errors="ignore").strip()
    return "latex" if "\\" in word or word in LATEX_WORDS else "arithmetic"


def poetry_group(token: str) -> str | None:
    word = token_bytes(token).decode("utf-8", errors="ignore").strip()
    return next((g for g, words in POETRY_GROUPS.items() if word in words), None)


def planted_dims(token: str) -> list[int]:
    """Dimensions set to 1.0 in this token's embedding (besides its identity)."""
    if token == BOS_TOKEN:
        return [BOS_DIM]
    categories = marker_categories(token) | meaning_categories(token)
    dims = [ALWAYS_DIM] + [DIM[c] for c in sorted(categories)]
    if (group := poetry_group(token)) is not None:
        dims.append(DIM[f"poetry_{group}"])
    if (kind := math_kind(token)) is not None:
        dims.append(DIM[kind])
    return dims


def identity_vector(token: str, seed: int) -> np.ndarray:
    """The token's random identity (dimensions FIRST_IDENTITY_DIM..), seeded by its bytes so it
    is the same in every process and computable from the token string alone."""
    digest = hashlib.sha256(token.encode("utf-8")).digest()
    rng = np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])
    n = D_MODEL - FIRST_IDENTITY_DIM
    return rng.normal(0, 1 / np.sqrt(n), n)


def training_corpus() -> list[str]:
    """A small built-in corpus, so the demo tokenizer never depends on the user's texts."""
    lines = [
        "The quick brown fox jumps over the lazy dog. It was a bright cold day in April.",
        "def main(self): return None  # import os, sys; from typing import List",
        "https://www.example.com/path/to/page?query=1&lang=en http://docs.python.org/3/",
        "x^2 + y^2 = z^2, \\frac{a}{b} = c, \\sum_{i=1}^{n} i = n(n+1)/2, \\int_0^1 f(x) dx",
        "lol omg this is so good 😂🔥🙌 #blessed @friend RT @user: can't believe it!!",
        "The parties hereby agree, pursuant to the Agreement, that the Party shall comply.",
        "hey, are you gonna come tonight? yeah I'm kinda tired, um, like, you know, haha",
        "Le chat est sur la table. Der Hund schläft. 你好世界。こんにちは。안녕하세요. Привет мир.",
    ]
    words = [w for group in WORD_MARKERS.values() for w in sorted(group)]
    words += [w.strip() for w in LOTTERY_WORDS]
    lines += [" ".join(words)] * 30 + [" ".join(f" {w}" for w in words)] * 30
    return lines * 20


def with_meaning_tokens(tok):
    """The trained BPE tokenizer with ``meaning_tokens`` appended to its vocabulary as whole
    words: BPE's ``ignore_merges`` takes a pre-tokenized word that is in the vocabulary as one
    token and runs the merges otherwise. A word that is a trained token also comes out of the
    merges as itself, so only the added words tokenise differently (tests/test_demo.py checks
    every text the demo reads against the merges alone)."""
    import json

    from tokenizers import Tokenizer

    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    for token in meaning_tokens():
        if token in vocab:
            raise ValueError(f"meaning word {token!r} is already a trained token")
        vocab[token] = len(vocab)
    spec["model"]["ignore_merges"] = True
    return Tokenizer.from_str(json.dumps(spec))


def trained_tokenizer():
    """The byte-level BPE tokenizer trained on ``training_corpus`` (a ``tokenizers.Tokenizer``,
    before ``with_meaning_tokens``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[BOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(training_corpus(), trainer)
    return tok


def build_tokenizer(save_dir: str | Path):
    """Train the demo tokenizer, add the meaning words, save it, and load it back
    (TransformerLens needs the `name_or_path` that only a saved-and-reloaded tokenizer has)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    PreTrainedTokenizerFast(
        tokenizer_object=with_meaning_tokens(trained_tokenizer()),
        # the one special token is every special token
        **dict.fromkeys(("bos_token", "eos_token", "unk_token", "pad_token"), BOS_TOKEN),
        model_max_length=512,
    ).save_pretrained(str(save_dir))
    return AutoTokenizer.from_pretrained(str(save_dir))
