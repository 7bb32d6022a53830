"""The demo's SAE families: real SAELens ``StandardSAE`` objects with planted features.

Every planted feature is a ReLU of one direction: ``act = scale * (x . u - threshold)``. A
specialist reads one planted dimension (``vocab.DIM``) with threshold 0.5 and fires
``activation * gain(layer)`` on a token whose dimension is 1.0. Its decoder row is scaled so that
``act * W_dec[f]`` gives back what it read: on a token at 1.0 it removes 1.0 from the residual
stream along the decoder direction (the causal stage's zero ablation).

Decoder directions (what the comparison stage's cosines see):
- python (the causal driver), math (the cross-layer chain), frequent, BOS: exactly the dimension
  they read, at every layer (cosine 1 between layers); math's row at layer 0 gives back only
  ``CHAIN_STEP`` of its dimension (the circuits stage's planted two-step chain);
- urls (the causal pure detector): the all-ones direction, which every LayerNorm removes and
  every (centred) unembedding column ignores: ablating it changes no logit;
- every other specialist: its dimension mixed with a random identity direction drawn per layer
  (cosine ~0.8 with the dimension, ~0.6 between layers);
- attn/mlp specialists: exactly the dimension block 0 writes.
"""

from __future__ import annotations

import hashlib

import numpy as np

from .model import N_LAYERS
from .vocab import (
    ALWAYS_DIM,
    BOS_DIM,
    CATEGORY_DIMS,
    D_MODEL,
    DIM,
    FIRST_IDENTITY_DIM,
    LOTTERY_WORDS,
    POETRY_GROUPS,
    WRITTEN,
    bpe_token,
    identity_vector,
)

D_SAE = 128
FAMILIES = {  # name -> (hook template, d_sae, layers)
    "res": ("blocks.{layer}.hook_resid_pre", D_SAE, tuple(range(N_LAYERS))),
    "attn": ("blocks.{layer}.hook_attn_out", 64, tuple(range(N_LAYERS))),
    "mlp": ("blocks.{layer}.hook_mlp_out", 64, tuple(range(N_LAYERS))),
    "res_narrow": ("blocks.{layer}.hook_resid_pre", 32, (2,)),
    "res_wide": ("blocks.{layer}.hook_resid_pre", 256, (2,)),
}
FAMILY_SEED = {name: i for i, name in enumerate(FAMILIES)}

SURFACE_GAIN = (1.0, 1.3, 1.6, 2.0)  # python, urls, math, social, poetry groups
PRAGMATIC_GAIN = (0.3, 0.6, 1.0, 1.5)  # non_english
REGISTER_GAIN = (0.6, 1.2, 2.0, 3.0)  # formal, conversational
MARKER_ACTIVATION = 120.0  # activation of a specialist on a marker token at gain 1
CONTEXT_ACTIVATION = 15.0  # conversational: fires on every token after the first cue
POETRY_ACTIVATION = 100.0
FREQUENT_ACTIVATION = 2.0
BOS_ACTIVATION = 100.0
LOTTERY_ACTIVATION = 20000.0  # per occurrence of its word: beats every specialist's peak
LOTTERY_THRESHOLD = 0.7  # share of the word's own identity norm
DECODER_MIX = 0.75  # weight of the random identity direction in mixed decoder rows
DRIVER, DETECTOR, CHAIN = "python", "urls", "math"
# The circuits stage's planted two-step chain, math layer 0 -> math layer 1: at layer 0 the math
# specialist's decoder row gives back only this much of the math dimension it reads (on a marker
# token at its peak; the rest stays in the SAE's error). Layer 1's math specialist reads that
# dimension with threshold 0.5, so ablating A lowers B by 2 * CHAIN_STEP = 0.96 of B's peak,
# linearly: B stays above its threshold (block 0 writes -0.005..+0.036 along the math dimension
# on the demo's math markers), so attribution equals ablation and the chain's completeness is
# about 0.93.
CHAIN_STEP = 0.48


def gain(role: str, layer: int) -> float:
    if role in ("formal", "conversational"):
        gains = REGISTER_GAIN
    elif role == "non_english":
        gains = PRAGMATIC_GAIN
    else:
        gains = SURFACE_GAIN
    return gains[min(layer, len(gains) - 1)]


def unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def basis(dim: int) -> np.ndarray:
    e = np.zeros(D_MODEL)
    e[dim] = 1.0
    return e


def random_identity_direction(seed: int, *key: str | int) -> np.ndarray:
    digest = hashlib.sha256(repr(key).encode()).digest()
    rng = np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])
    v = np.zeros(D_MODEL)
    v[FIRST_IDENTITY_DIM:] = rng.normal(size=D_MODEL - FIRST_IDENTITY_DIM)
    return unit(v)


class Plan:
    """Planted features of one SAE: encoder columns, biases and decoder rows by role."""

    def __init__(self, d_sae: int, rng: np.random.Generator):
        self.d_sae = d_sae
        self.ids = [int(i) for i in rng.permutation(d_sae)]
        self.w_enc = np.zeros((D_MODEL, d_sae))
        self.b_enc = np.zeros(d_sae)
        self.w_dec = np.zeros((d_sae, D_MODEL))
        self.roles: dict[str, int] = {}

    def add(
        self,
        role: str,
        direction,
        activation: float,
        threshold: float,
        decoder,
        decoder_norm: float | None = None,
    ) -> int:
        """Plant ``role``: with ``u`` the unit direction, it fires when ``x . u`` exceeds
        ``threshold * |direction|``, linearly, reaching ``activation`` at ``x . u =
        |direction|`` (a token at 1.0 on a planted dimension); the decoder row is ``decoder``
        (unit) scaled so that this activation times the row has norm ``decoder_norm`` (default:
        the norm of ``direction``)."""
        f = self.ids[len(self.roles)]
        norm = float(np.linalg.norm(direction))
        scale = activation / ((1 - threshold) * norm)
        self.w_enc[:, f] = scale * unit(direction)
        self.b_enc[f] = -scale * threshold * norm
        self.w_dec[f] = unit(decoder) * (decoder_norm or norm) / activation
        self.roles[role] = f
        return f

    def noise(self) -> list[int]:
        return self.ids[len(self.roles) :]


def specialist(
    plan: Plan, role: str, dim: int, activation: float, decoder, decoder_norm=None
) -> int:
    return plan.add(role, basis(dim), activation, 0.5, decoder, decoder_norm)


def mixed_decoder(seed: int, family: str, role: str, layer: int, dim: int) -> np.ndarray:
    return unit(basis(dim) + DECODER_MIX * random_identity_direction(seed, family, role, layer))


def category_decoder(seed: int, family: str, category: str, layer: int, dim: int) -> np.ndarray:
    if category == DETECTOR:
        return np.ones(D_MODEL)
    if category in (DRIVER, CHAIN):
        return basis(dim)
    return mixed_decoder(seed, family, category, layer, dim)


def residual_dim(category: str) -> int:
    """The dimension a residual-stream specialist of ``category`` reads."""
    written = f"{category}_written"
    return DIM[written] if written in DIM else DIM[category]


def plant_categories(plan: Plan, seed: int, family: str, layer: int, split_math: bool = False):
    for category in CATEGORY_DIMS:
        act = CONTEXT_ACTIVATION if category == "conversational" else MARKER_ACTIVATION
        act *= gain(category, layer)
        if category == CHAIN and split_math:
            for kind in ("latex", "arithmetic"):  # a child token carries both dimensions
                both = basis(DIM[CHAIN]) + basis(DIM[kind])
                plan.add(f"math_{kind}", basis(DIM[kind]), act, 0.5, both, np.sqrt(2))
            continue
        dim = residual_dim(category)
        decoder = category_decoder(seed, family, category, layer, dim)
        step = CHAIN_STEP if (category, family, layer) == (CHAIN, "res", 0) else None
        specialist(plan, category, dim, act, decoder, step)
    specialist(
        plan, "frequent", ALWAYS_DIM, FREQUENT_ACTIVATION * SURFACE_GAIN[layer], basis(ALWAYS_DIM)
    )
    specialist(plan, "bos", BOS_DIM, BOS_ACTIVATION, basis(BOS_DIM))


def plant_poetry(plan: Plan, seed: int, family: str, layer: int) -> None:
    for group in POETRY_GROUPS:
        dim = DIM[f"poetry_{group}"]
        act = POETRY_ACTIVATION * SURFACE_GAIN[layer]
        specialist(
            plan,
            f"poetry_{group}",
            dim,
            act,
            mixed_decoder(seed, family, f"poetry_{group}", layer, dim),
        )


def lottery_direction(word: str, seed: int) -> np.ndarray:
    v = np.zeros(D_MODEL)
    v[FIRST_IDENTITY_DIM:] = identity_vector(bpe_token(word), seed)
    return v


def plant_lottery(plan: Plan, seed: int) -> None:
    for word in LOTTERY_WORDS:
        direction = lottery_direction(word, seed)
        plan.add(
            f"lottery_{word.strip()}", direction, LOTTERY_ACTIVATION, LOTTERY_THRESHOLD, direction
        )


def plant_identity_noise(plan: Plan, rng: np.random.Generator) -> None:
    """Random sparse features on the identity dimensions (fire on a few % of tokens, weakly)."""
    noise = plan.noise()
    directions = rng.normal(0, 1, (D_MODEL - FIRST_IDENTITY_DIM, len(noise)))
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    plan.w_enc[FIRST_IDENTITY_DIM:, noise] = 8.0 * directions
    plan.b_enc[noise] = -8.0 * rng.uniform(0.2, 0.35, len(noise))
    plan.w_dec[noise] = plan.w_enc[:, noise].T / 8.0


def to_sae(plan: Plan, hook_name: str):
    import torch
    from sae_lens import StandardSAE, StandardSAEConfig

    cfg = StandardSAEConfig(d_in=D_MODEL, d_sae=plan.d_sae, apply_b_dec_to_input=False)
    cfg.metadata.hook_name = hook_name
    cfg.metadata.model_name = "sae-specialists-demo"
    cfg.metadata.hook_head_index = None
    sae = StandardSAE(cfg)
    with torch.no_grad():
        sae.W_enc.copy_(torch.from_numpy(plan.w_enc.astype(np.float32)))
        sae.b_enc.copy_(torch.from_numpy(plan.b_enc.astype(np.float32)))
        sae.W_dec.copy_(torch.from_numpy(plan.w_dec.astype(np.float32)))
        sae.b_dec.zero_()
    return sae


def family_rng(seed: int, family: str, layer: int) -> np.random.Generator:
    return np.random.default_rng([seed, FAMILY_SEED[family], layer])


def build_sae(layer: int, seed: int, logit_direction=None):
    """The residual family's SAE at ``layer``; returns (sae, {role: feature id}).

    ``logit_direction`` (optional, a d_model vector such as an unembedding column): plant the
    role 'logit', the first noise feature, whose decoder row is that direction normalised.
    Everything else is identical with or without it."""
    rng = family_rng(seed, "res", layer)
    plan = Plan(D_SAE, rng)
    plant_categories(plan, seed, "res", layer)
    plant_poetry(plan, seed, "res", layer)
    plant_lottery(plan, seed)
    plant_identity_noise(plan, rng)
    roles = dict(plan.roles)
    if logit_direction is not None:
        roles["logit"] = plan.noise()[0]
        plan.w_dec[roles["logit"]] = unit(np.asarray(logit_direction).reshape(D_MODEL))
    return to_sae(plan, FAMILIES["res"][0].format(layer=layer)), roles


def build_width_sae(family: str, layer: int, seed: int):
    """res_narrow / res_wide: the same residual hook at two dictionary sizes; the wide one splits
    the narrow math feature into a LaTeX child and an arithmetic child."""
    hook, d_sae, _ = FAMILIES[family]
    rng = family_rng(seed, family, layer)
    plan = Plan(d_sae, rng)
    plant_categories(plan, seed, family, layer, split_math=family == "res_wide")
    plant_identity_noise(plan, rng)
    return to_sae(plan, hook.format(layer=layer)), dict(plan.roles)


def build_component_sae(family: str, layer: int, seed: int, reference: np.ndarray):
    """attn / mlp: the block-0 writer's category (conversational for attention, non_english for
    the MLP; dead at later layers, where nothing writes it) plus random features calibrated on
    ``reference`` (rows of this hook's activations on the built-in corpus): each fires on about
    1-5 % of tokens with activations of order 1."""
    hook, d_sae, _ = FAMILIES[family]
    rng = family_rng(seed, family, layer)
    plan = Plan(d_sae, rng)
    category = next(c for c, writer in WRITTEN.items() if writer == family)
    act = CONTEXT_ACTIVATION if category == "conversational" else MARKER_ACTIVATION
    dim = DIM[f"{category}_written"]
    specialist(plan, category, dim, act, basis(dim))
    noise = plan.noise()
    directions = rng.normal(0, 1, (D_MODEL, len(noise)))
    directions[[DIM["conversational_written"], DIM["non_english_written"]]] = 0.0
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    proj = reference @ directions
    scale = proj.std(axis=0) + 1e-6
    cut = np.quantile(proj, 1 - rng.uniform(0.01, 0.05, len(noise)), axis=0).diagonal()
    plan.w_enc[:, noise] = directions / scale
    plan.b_enc[noise] = -cut / scale
    plan.w_dec[noise] = directions.T * scale[:, None]
    return to_sae(plan, hook.format(layer=layer)), dict(plan.roles)
