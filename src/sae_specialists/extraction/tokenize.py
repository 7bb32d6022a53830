"""Tokenisation for extraction: each text on its own (no padding), BOS prepended, long texts
truncated or refused; a stream of texts grouped into windows of about ``window_tokens`` tokens,
and a window's texts into batches of similar length."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ..core.errors import ModelError, TextsError
from .texts import Text

log = logging.getLogger(__name__)

WINDOW_TOKENS = 32_768  # tokens per window: length-sorting scope, unit of work and of writing
TOKENIZE_TEXTS = 512  # texts tokenized per tokenizer call while filling a window


@dataclass
class TokenizedText:
    text: Text
    ids: list[int]  # BOS first
    truncated_from: int | None = None


def context_limit(model, max_tokens: int | None) -> int:
    n_ctx = int(model.cfg.n_ctx)
    return min(max_tokens, n_ctx) if max_tokens else n_ctx


def tokenize_texts(model, texts: list[Text], max_tokens=None, long_texts="truncate"):
    """Tokenize each text on its own (no padding) and prepend the model's BOS token."""
    tokenizer = model.tokenizer
    if tokenizer.bos_token_id is None:
        raise ModelError("model: the tokenizer has no BOS token; set bos_token when saving it.")
    limit = context_limit(model, max_tokens)
    texts = list(texts)
    if not texts:
        return []
    encoded = tokenizer([t.text for t in texts], add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    out = [TokenizedText(text, [bos] + list(ids)) for text, ids in zip(texts, encoded, strict=True)]
    too_long = [t for t in out if len(t.ids) > limit]
    if too_long:
        listing = ", ".join(f"{t.text.text_id} ({len(t.ids)} tokens)" for t in too_long)
        if long_texts == "error":
            raise TextsError(
                f"texts: {len(too_long)} text(s) are longer than the limit of {limit} tokens "
                f"(BOS included): {listing}. Shorten or split them, or set "
                "extraction.long_texts: truncate."
            )
        log.warning(
            "texts: truncating %d text(s) to %d tokens (BOS included): %s",
            len(too_long),
            limit,
            listing,
        )
        for t in too_long:
            t.truncated_from = len(t.ids)
            t.ids = t.ids[:limit]
    return out


def tokenized_windows(
    model,
    texts: Iterable[Text],
    max_tokens=None,
    long_texts="truncate",
    window_tokens: int | Callable[[], int] = WINDOW_TOKENS,
) -> Iterator[list[TokenizedText]]:
    """Tokenize a stream of texts and group it, in order, into windows of ~window_tokens (a
    number, or a function asked before each window: extraction/memory.py)."""
    size = window_tokens if callable(window_tokens) else (lambda: window_tokens)
    pending: list[TokenizedText] = []
    n_tokens = 0
    group: list[Text] = []

    def flush_group():
        nonlocal n_tokens
        for t in tokenize_texts(model, group, max_tokens, long_texts):
            pending.append(t)
            n_tokens += len(t.ids)

    for text in texts:
        group.append(text)
        if len(group) >= TOKENIZE_TEXTS:
            flush_group()
            group = []
            while n_tokens >= size():
                window, rest = split_window(pending, size())
                yield window
                pending = rest
                n_tokens = sum(len(t.ids) for t in pending)
    if group:
        flush_group()
    while pending:
        window, pending = split_window(pending, size())
        yield window


def split_window(items: list[TokenizedText], window_tokens: int):
    total = 0
    for i, t in enumerate(items):
        total += len(t.ids)
        if total >= window_tokens:
            return items[: i + 1], items[i + 1 :]
    return items, []


def length_sorted_batches(tokenized: list[TokenizedText], batch_size: int) -> list[list[int]]:
    """Indices of texts grouped into batches of similar length (longest first)."""
    order = sorted(range(len(tokenized)), key=lambda i: (-len(tokenized[i].ids), i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
