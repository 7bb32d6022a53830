"""The offline demo: a tiny HookedTransformer and SAEs with *planted* specialist features.

Everything is built from a fixed seed with no network, in the project's local formats, so that
``snakemake --cores 4 --configfile config/demo.yaml`` runs end to end on a fresh clone.

Design (d_model = 64):
- dimensions 0-6 are "category marker" directions, one per demo category (CATEGORY_MARKERS);
  a token's embedding has 1.0 on dimension c when the token is a marker of category c
  (python keywords and ``):``/``_``, URL pieces, math operators, emoji/#/@, non-Latin and
  accented letters, legal vocabulary, chatty words);
- dimension 7 is set on the BOS token only; dimension 8 on every other token;
- dimensions 9-63 hold random token identity; blocks are random but small, so the residual
  stream keeps the planted structure at every layer, with a little context noise.

Each layer's SAE (d_sae = 128) has, at feature ids shuffled per layer (see ``planted.json``):
- one specialist per category reading its marker dimension, stronger in deeper layers, and for
  "pragmatic" categories (formal, conversational, non_english) weak in early layers;
- a *frequent* feature firing weakly on every non-BOS token;
- a *BOS-only* feature firing very strongly on BOS (must vanish once BOS is excluded);
- random sparse "noise" features on the identity dimensions;
- when ``build_demo`` passes the model's unembedding, a *logit* feature: one noise feature whose
  decoder row is the normalised unembedding column of LOGIT_TOKEN (its activations are those of
  the noise feature; only its decoder row, i.e. its logit effects, is planted).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

N_LAYERS = 4
D_MODEL = 64
D_SAE = 128
VOCAB_SIZE = 1024
BOS_TOKEN = "<|endoftext|>"
CATEGORY_DIMS = ("python", "urls", "math", "non_english", "social", "formal", "conversational")
BOS_DIM, ALWAYS_DIM, FIRST_IDENTITY_DIM = 7, 8, 9
SURFACE_GAIN = (1.0, 1.3, 1.6, 2.0)  # python, urls, math, social
PRAGMATIC_GAIN = (0.3, 0.6, 1.0, 1.5)  # non_english
# formal and conversational: sparse markers (whole words), so a stronger planted direction
REGISTER_GAIN = (0.6, 1.2, 2.0, 3.0)
REGISTER = {"formal", "conversational"}
MARKER_ACTIVATION = 120.0  # activation of a specialist on a marker token at gain 1
FREQUENT_ACTIVATION = 2.0
BOS_ACTIVATION = 100.0
BLOCK_WRITE_SCALE = 0.03  # keeps block writes ~0.1-0.3 in norm: context noise, not signal
LOGIT_TOKEN = " fox"  # the token the planted 'logit' feature's decoder row points at

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
        "lemme gimme hmm Hmm u ur Oh".split()
    ),
    "social": set("lol omg OMG RT # @ lmao LOL".split()),
    "urls": set("http https :// www .com .org .io % & ? href".split()),
    "math": set("+ ^ \\ frac sum int sqrt pm cdot infty lim dx theta alpha".split()),
}


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


def token_bytes(token: str) -> bytes:
    return bytes(UNICODE_TO_BYTE[ch] for ch in token if ch in UNICODE_TO_BYTE)


def marker_categories(token: str) -> set[str]:
    """Categories whose marker direction this (byte-level BPE) token carries."""
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
    lines += [" ".join(words)] * 30 + [" ".join(f" {w}" for w in words)] * 30
    return lines * 20


def build_tokenizer(save_dir: str | Path):
    """Train the demo tokenizer, save it, and load it back (TransformerLens needs the
    `name_or_path` that only a saved-and-reloaded tokenizer has)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

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
    PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS_TOKEN,
        eos_token=BOS_TOKEN,
        unk_token=BOS_TOKEN,
        pad_token=BOS_TOKEN,
        model_max_length=512,
    ).save_pretrained(str(save_dir))
    return AutoTokenizer.from_pretrained(str(save_dir))


def model_config(d_vocab: int, seed: int) -> dict:
    return dict(
        n_layers=N_LAYERS,
        d_model=D_MODEL,
        n_heads=4,
        d_head=16,
        d_mlp=128,
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


def embedding_matrix(tokenizer, rng: np.random.Generator) -> np.ndarray:
    vocab = tokenizer.get_vocab()
    w_e = np.zeros((len(vocab), D_MODEL), dtype=np.float32)
    w_e[:, FIRST_IDENTITY_DIM:] = rng.normal(
        0, 1 / np.sqrt(D_MODEL - FIRST_IDENTITY_DIM), (len(vocab), D_MODEL - FIRST_IDENTITY_DIM)
    )
    for token, index in vocab.items():
        if token == BOS_TOKEN:
            w_e[index, BOS_DIM] = 1.0
            continue
        w_e[index, ALWAYS_DIM] = 1.0
        for category in marker_categories(token):
            w_e[index, CATEGORY_DIMS.index(category)] = 1.0
    return w_e


def build_model(model_dir: str | Path, seed: int = 0):
    """The demo HookedTransformer; its tokenizer is saved into `model_dir` on the way."""
    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    tokenizer = build_tokenizer(model_dir)
    kwargs = model_config(len(tokenizer), seed)
    cfg = HookedTransformerConfig(**{**kwargs, "dtype": torch.float32})
    model = HookedTransformer(cfg, tokenizer=tokenizer)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        model.embed.W_E.copy_(torch.from_numpy(embedding_matrix(tokenizer, rng)))
        pos = np.zeros((cfg.n_ctx, D_MODEL), dtype=np.float32)
        pos[:, FIRST_IDENTITY_DIM:] = rng.normal(0, 0.02, (cfg.n_ctx, D_MODEL - FIRST_IDENTITY_DIM))
        model.pos_embed.W_pos.copy_(torch.from_numpy(pos))
        for block in model.blocks:  # small writes: context noise that keeps the planted dims
            block.attn.W_O.mul_(BLOCK_WRITE_SCALE)
            block.mlp.W_out.mul_(BLOCK_WRITE_SCALE)
    model.eval()
    return model, kwargs


def layer_gain(category: str, layer: int) -> float:
    if category in REGISTER:
        gains = REGISTER_GAIN
    elif category == "non_english":
        gains = PRAGMATIC_GAIN
    else:
        gains = SURFACE_GAIN
    return gains[min(layer, len(gains) - 1)]


def build_sae(layer: int, seed: int, logit_direction=None):
    """One layer's SAE with planted features; returns (sae, {role: feature id}).

    ``logit_direction`` (optional, a d_model vector such as an unembedding column): plant the
    role 'logit', the first noise feature, whose decoder row is that direction normalised.
    Everything else is identical with or without it."""
    import torch
    from sae_lens import StandardSAE, StandardSAEConfig

    rng = np.random.default_rng([seed, layer])
    ids = rng.permutation(D_SAE)
    roles = [*CATEGORY_DIMS, "frequent", "bos"]
    planted = {role: int(ids[i]) for i, role in enumerate(roles)}
    w_enc = np.zeros((D_MODEL, D_SAE), dtype=np.float32)
    b_enc = np.zeros(D_SAE, dtype=np.float32)
    for c, category in enumerate(CATEGORY_DIMS):
        scale = 2 * MARKER_ACTIVATION * layer_gain(category, layer)
        w_enc[c, planted[category]] = scale
        b_enc[planted[category]] = -0.5 * scale
    frequent, bos = planted["frequent"], planted["bos"]
    w_enc[ALWAYS_DIM, frequent] = 2 * FREQUENT_ACTIVATION * SURFACE_GAIN[layer]
    b_enc[frequent] = -0.5 * w_enc[ALWAYS_DIM, frequent]
    w_enc[BOS_DIM, bos], b_enc[bos] = 2 * BOS_ACTIVATION, -BOS_ACTIVATION
    noise = ids[len(roles) :]
    directions = rng.normal(0, 1, (D_MODEL - FIRST_IDENTITY_DIM, len(noise)))
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    w_enc[FIRST_IDENTITY_DIM:, noise] = 8.0 * directions
    b_enc[noise] = -8.0 * rng.uniform(0.2, 0.35, len(noise))
    w_dec = w_enc.T / np.maximum(np.linalg.norm(w_enc.T, axis=1, keepdims=True), 1e-8)
    if logit_direction is not None:
        direction = np.asarray(logit_direction, dtype=np.float64).reshape(D_MODEL)
        planted["logit"] = int(noise[0])
        w_dec[planted["logit"]] = direction / np.linalg.norm(direction)

    cfg = StandardSAEConfig(d_in=D_MODEL, d_sae=D_SAE, apply_b_dec_to_input=False)
    cfg.metadata.hook_name = f"blocks.{layer}.hook_resid_pre"
    cfg.metadata.model_name = "sae-specialists-demo"
    cfg.metadata.hook_head_index = None
    sae = StandardSAE(cfg)
    with torch.no_grad():
        sae.W_enc.copy_(torch.from_numpy(w_enc))
        sae.b_enc.copy_(torch.from_numpy(b_enc))
        sae.W_dec.copy_(torch.from_numpy(w_dec.astype(np.float32)))
        sae.b_dec.zero_()
    return sae, planted


def logit_token_id(model) -> int:
    """LOGIT_TOKEN's id when it is one token whose own unembedding column scores it first
    (column . column > column . any other column); else the largest-norm column's token."""
    w_u = model.W_U.detach().cpu().numpy()
    ids = model.tokenizer(LOGIT_TOKEN, add_special_tokens=False)["input_ids"]
    if len(ids) == 1 and int(np.argmax(w_u[:, ids[0]] @ w_u)) == ids[0]:
        return int(ids[0])
    return int(np.argmax(np.linalg.norm(w_u, axis=0)))


def build_demo(out_dir: str | Path, seed: int = 0) -> dict:
    """Write the demo model and SAEs (local formats) and planted.json; returns the plan."""
    from ..extraction.models import save_local_model

    out_dir = Path(out_dir)
    model, _ = build_model(out_dir / "model", seed)
    save_local_model(model, out_dir / "model")
    plan: dict = {"seed": seed, "categories": list(CATEGORY_DIMS), "layers": {}}
    token_id = logit_token_id(model)
    plan["logit_token"] = {"id": token_id, "token": model.tokenizer.decode([token_id])}
    w_u = model.W_U.detach().cpu().numpy()
    for layer in range(N_LAYERS):
        sae, planted = build_sae(layer, seed, logit_direction=w_u[:, token_id])
        sae.save_model(str(out_dir / "saes" / "res" / f"layer{layer}"))
        plan["layers"][str(layer)] = planted
    (out_dir / "planted.json").write_text(json.dumps(plan, indent=2, sort_keys=True))
    return plan
