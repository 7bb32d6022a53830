"""The demo HookedTransformer: planted embedding, block-0 writers and the causal unembedding.

- Embedding: ``vocab.planted_dims`` set to 1.0 plus the token's random identity; positional
  embeddings are small random identity noise.
- Blocks: random (TransformerLens init, seeded) with their attention and MLP writes scaled by
  ``BLOCK_WRITE_SCALE`` (context noise that keeps the planted dimensions), except two planted
  block-0 circuits:
  * attention writes ``conversational``: head 0 of block 0 attends from every position to the
    conversational cue tokens before it (query: a constant bias; key: the cue dimension) and
    copies the cue into dimension ``conversational_written`` (about 1.0 at every position after
    the first cue, about 0 before it); no MLP and no other head writes that dimension;
  * the MLP writes ``non_english``: neuron 0 of block 0's MLP fires on the non-English cue
    tokens and writes about 1.0 into ``non_english_written`` at that position; no attention head
    and no other neuron writes that dimension.
- Unembedding (the causal plant): every column is centred over d_model, so a
  direction along the all-ones vector changes no logit (and every LayerNorm removes it anyway).
  Row ``python`` is the driver: ``DRIVER_NEXT * log p(next token | a python marker)`` (estimated
  on the built-in ``PYTHON_REFERENCE`` snippet, half smoothed with its unigram frequencies) plus
  ``DRIVER_KEYWORD`` on every python marker token. Where the python marker direction is present
  the model predicts what follows python tokens (so removing the direction raises the loss on
  python code) and, when the direction is pushed far up (steering), python keywords.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .vocab import (
    D_MODEL,
    DIM,
    FIRST_IDENTITY_DIM,
    build_tokenizer,
    identity_vector,
    marker_categories,
    meaning_tokens,
    planted_dims,
)

N_LAYERS = 4
N_HEADS, D_HEAD, D_MLP = 4, 16, 128
NEVER_PREDICTED = -100.0  # b_U of the added meaning words: no softmax mass, never sampled
BLOCK_WRITE_SCALE = 0.03  # keeps block writes ~0.1-0.3 in norm: context noise, not signal
DRIVER = "python"  # the category whose marker direction drives next-token logits
DRIVER_NEXT = 0.1  # weight of log p(next | python marker) in W_U[python dim]
DRIVER_KEYWORD = 0.5  # extra W_U[python dim] of each python marker token
ATTN_KEY_GAIN = 13.0  # head 0 of block 0: attention logit per unit of normalised cue
MLP_CUE_BIAS = -2.0  # neuron 0 of block 0: fires when the normalised cue exceeds 2


PYTHON_REFERENCE = """
import os
import sys
from collections import defaultdict


class Inventory:
    \"\"\"Items in stock, by name.\"\"\"

    def __init__(self, items=None):
        self.items = dict(items or {})
        self.log = []

    def add(self, name, count=1):
        if count <= 0:
            raise ValueError(f"count must be positive, got {count}")
        self.items[name] = self.items.get(name, 0) + count
        self.log.append(("add", name, count))
        return self.items[name]

    def remove(self, name, count=1):
        if name not in self.items:
            return None
        elif self.items[name] < count:
            return False
        self.items[name] -= count
        return True


def read_lines(path):
    with open(path, encoding="utf-8") as fh:
        return [line.rstrip() for line in fh if line.strip()]


async def poll(client, url, retries=3):
    for attempt in range(retries):
        response = await client.get(url)
        if response.ok:
            return await response.json()
    return None


def main(argv=None):
    args = argv or sys.argv[1:]
    counts = defaultdict(int)
    for word in args:
        counts[word.lower()] += 1
    best = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)
    print(best[:10])
    return 0


if __name__ == "__main__":
    sys.exit(main())
"""


def model_config(d_vocab: int, seed: int) -> dict:
    return dict(
        n_layers=N_LAYERS,
        d_model=D_MODEL,
        n_heads=N_HEADS,
        d_head=D_HEAD,
        d_mlp=D_MLP,
        n_ctx=512,
        d_vocab=d_vocab,
        act_fn="gelu_new",
        normalization_type="LN",
        seed=seed,
        model_name="sae-specialists-demo",
        original_architecture="GPT2LMHeadModel",
        default_prepend_bos=True,
        dtype="float32",
    )


def embedding_matrix(tokenizer, seed: int) -> np.ndarray:
    vocab = tokenizer.get_vocab()
    w_e = np.zeros((len(vocab), D_MODEL), dtype=np.float32)
    for token, index in vocab.items():
        w_e[index, FIRST_IDENTITY_DIM:] = identity_vector(token, seed)
        w_e[index, planted_dims(token)] = 1.0
    return w_e


def driver_tokens(tokenizer) -> list[int]:
    """Ids of the tokens whose logits the driver direction raises (the python markers)."""
    vocab = tokenizer.get_vocab()
    return sorted(i for t, i in vocab.items() if DRIVER in marker_categories(t))


def gelu_new(x: float) -> float:
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def plant_blocks(model) -> None:
    """Scale the random blocks to small writes and plant the two block-0 writers."""
    import torch

    attn_dim, mlp_dim = DIM["conversational_written"], DIM["non_english_written"]
    with torch.no_grad():
        for block in model.blocks:
            block.attn.W_O.mul_(BLOCK_WRITE_SCALE)
            block.mlp.W_out.mul_(BLOCK_WRITE_SCALE)
            block.attn.W_O[:, :, [attn_dim, mlp_dim]] = 0.0
            block.mlp.W_out[:, [attn_dim, mlp_dim]] = 0.0
        attn = model.blocks[0].attn
        for name in ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V"):
            getattr(attn, name)[0] = 0.0
        attn.b_Q[0, 0] = 1.0
        attn.W_K[0, DIM["conversational"], 0] = ATTN_KEY_GAIN
        attn.W_V[0, DIM["conversational"], 0] = 1.0
        # a cue token normalises to ~4.5 on its cue dimension (LayerNorm of the embedding)
        attn.W_O[0, 0, attn_dim] = 1 / 4.5
        mlp = model.blocks[0].mlp
        mlp.W_in[:, 0] = 0.0
        mlp.W_in[DIM["non_english"], 0] = 1.0
        mlp.b_in[0] = MLP_CUE_BIAS
        mlp.W_out[0] = 0.0
        mlp.W_out[0, mlp_dim] = 1 / gelu_new(4.5 + MLP_CUE_BIAS)


def driver_row(tokenizer, n_vocab: int) -> np.ndarray:
    """W_U's row for the driver dimension over the first ``n_vocab`` tokens (the trained ones;
    see the module docstring); mean 0 over them."""
    ids = tokenizer(PYTHON_REFERENCE)["input_ids"]
    after = np.zeros(n_vocab)
    for prev, nxt in zip(tokenizer.convert_ids_to_tokens(ids)[:-1], ids[1:], strict=True):
        if DRIVER in marker_categories(prev):
            after[nxt] += 1
    unigram = np.bincount(ids, minlength=n_vocab).astype(np.float64)
    p = 0.5 * (after + 1) / (after.sum() + n_vocab) + 0.5 * (unigram + 1) / (len(ids) + n_vocab)
    row = DRIVER_NEXT * np.log(p)
    row[driver_tokens(tokenizer)] += DRIVER_KEYWORD
    return row - row.mean()


def plant_unembedding(model) -> None:
    import torch

    with torch.no_grad():
        w_u = model.W_U
        row = driver_row(model.tokenizer, w_u.shape[1])
        w_u[DIM[DRIVER]] = torch.from_numpy(row).to(w_u.dtype)
        w_u.sub_(w_u.mean(dim=0, keepdim=True))


def add_meaning_tokens(model, w_e: np.ndarray) -> None:
    """Grow the trained vocabulary's embedding and unembedding by the meaning words (the last
    ids of the tokenizer, ``vocab.with_meaning_tokens``). Their embedding rows are planted like
    every token's; their unembedding columns are zero with a bias of ``NEVER_PREDICTED``, so the
    model never predicts them and every other token's probability is as before. (The model is
    built at the trained size first: TransformerLens draws its random weights in one stream that
    starts with W_E, so a larger vocabulary would change every block.)"""
    import torch

    n_vocab = w_e.shape[0]
    w_u, b_u = model.unembed.W_U.detach(), model.unembed.b_U.detach()
    n_trained = w_u.shape[1]
    new_w_u = torch.zeros((w_u.shape[0], n_vocab), dtype=w_u.dtype)
    new_w_u[:, :n_trained] = w_u
    new_b_u = torch.full((n_vocab,), NEVER_PREDICTED, dtype=b_u.dtype)
    new_b_u[:n_trained] = b_u
    model.embed.W_E = torch.nn.Parameter(torch.from_numpy(w_e))
    model.unembed.W_U = torch.nn.Parameter(new_w_u)
    model.unembed.b_U = torch.nn.Parameter(new_b_u)
    model.cfg.d_vocab = model.cfg.d_vocab_out = n_vocab


def build_model(model_dir: str | Path, seed: int = 0):
    """The demo HookedTransformer; its tokenizer is saved into `model_dir` on the way."""
    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    tokenizer = build_tokenizer(model_dir)
    n_trained = len(tokenizer) - len(meaning_tokens())
    cfg = HookedTransformerConfig(**{**model_config(n_trained, seed), "dtype": torch.float32})
    model = HookedTransformer(cfg, tokenizer=tokenizer)
    rng = np.random.default_rng(seed)
    w_e = embedding_matrix(tokenizer, seed)
    with torch.no_grad():
        model.embed.W_E.copy_(torch.from_numpy(w_e[:n_trained]))
        pos = np.zeros((cfg.n_ctx, D_MODEL), dtype=np.float32)
        pos[:, FIRST_IDENTITY_DIM:] = rng.normal(0, 0.02, (cfg.n_ctx, D_MODEL - FIRST_IDENTITY_DIM))
        model.pos_embed.W_pos.copy_(torch.from_numpy(pos))
    plant_blocks(model)
    plant_unembedding(model)
    add_meaning_tokens(model, w_e)
    model.eval()
    return model, model_config(len(tokenizer), seed)
