"""The model part of the circuits stage: what feeds a specialist, what it feeds (docs/circuits.md).

Definitions, for one specialist (the *root*: SAE site s_f, feature f) on the texts of its category
(tokenized as BOS + tokens; *counted positions* = real tokens after BOS, as in the extraction):

- an SAE *site* is one SAE at its hook; sites are ordered by when their hook runs in the forward
  pass (``hook_order``). *Later* sites run after the root's hook, *earlier* sites before it;
  another SAE on the root's own hook is neither (it decomposes the same activation);
- *zero ablation* of feature i at site s (the causal stage's zero mode, causal/ablation.py): at
  every counted position the activation x at the hook becomes ``x - a_i(x) * W_dec[i]``; the
  SAE's reconstruction error and every other feature's share of x are kept. When several
  features are ablated together, each hook's features are encoded from the activation that
  reaches it (earlier ablations included);
- **downstream edge** f -> (s', j): for every later site s' and feature j, the change of a_j at
  every counted position when f is zero-ablated, summed (``change_sum``); with the clean sum
  (``clean_sum``) and the number of counted tokens the ranking job divides by;
- **upstream attribution** (i at an earlier site s) -> f: attribution patching (Marks et al.
  2024): with m = the sum of f's activation over the counted positions and g_s = dm/dx_s (one
  backward pass; x_s the activation at s), ``attribution_i = sum over counted positions of
  a_i(x_s) * (W_dec[i] . g_s)``: the first-order estimate of how much m falls when i is
  zero-ablated. The SAE's *error node* (x_s - reconstruction) gets ``sum (x_s - x̂_s) . g_s``;
  the decoder bias is a constant and no node;
- **verification**: the top ``verify`` upstream features by |attribution| are each ablated alone
  (measured drop of m) and, for every prefix of that ranking, together (what remains of m).

Nothing here reads or writes files; ``circuits.entry`` does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..causal.ablation import ENCODE_ROWS, PASS_TOKENS, Batch, FeatureSite, iter_batches
from ..core.errors import SAEError


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the root's activation is read."""


# -- sites -------------------------------------------------------------------------------------


@dataclass
class Site:
    """One SAE at its hook, with its place in the forward pass."""

    family: str
    layer: int
    site: FeatureSite  # checks the SAE against the model; flat / encode helpers
    order: int

    @property
    def hook(self) -> str:
        return self.site.hook

    @property
    def sae(self):
        return self.site.sae

    @property
    def key(self) -> tuple[str, int]:
        return (self.family, self.layer)

    @property
    def d_sae(self) -> int:
        return int(self.sae.cfg.d_sae)


def hook_order(model, hooks: Sequence[str]) -> dict[str, int]:
    """The order in which ``hooks`` run in one forward pass (a two-token input)."""
    import torch

    seen: list[str] = []

    def record(act, hook):  # noqa: ARG001 - TransformerLens hook signature
        if hook.name not in seen:
            seen.append(hook.name)

    device = next(model.parameters()).device
    tokens = torch.zeros((1, 2), dtype=torch.long, device=device)
    with torch.inference_mode():
        model.run_with_hooks(tokens, fwd_hooks=[(h, record) for h in sorted(set(hooks))])
    missing = sorted(set(hooks) - set(seen))
    if missing:
        raise SAEError(f"circuits: the hooks {missing} never run in the model's forward pass.")
    return {h: i for i, h in enumerate(seen)}


def make_sites(model, loaded) -> list[Site]:
    """Sites of the loaded SAEs (``extraction.saes.LoadedSAE``), in forward-pass order."""
    checked = [(s.family, int(s.layer), FeatureSite(model, s.sae, s.hook_name)) for s in loaded]
    order = hook_order(model, [fs.hook for _, _, fs in checked])
    sites = [Site(family, layer, fs, order[fs.hook]) for family, layer, fs in checked]
    return sorted(sites, key=lambda s: (s.order, s.family, s.layer))


def freeze(model, sites: Sequence[Site]) -> None:
    """No parameter gradients: only the activations' gradients are wanted."""
    for module in [model, *(s.sae for s in sites)]:
        for p in module.parameters():
            p.requires_grad_(False)


# -- SAE helpers -------------------------------------------------------------------------------


def encode(site: Site, rows, features=None):
    """Activations [n, d_sae] of ``rows`` [n, d_in] (in blocks), or [n, len(features)]: then only
    those columns are computed where the SAE allows it (``sliced``), else a full encode."""
    if features is None or not sliceable(site.sae):
        return site.site.encode_rows(rows, features)
    import torch

    with torch.no_grad():
        return sliced(site.sae, rows, features)


def sliceable(sae) -> bool:
    """A ReLU StandardSAE or JumpReLUSAE (SAELens): one feature's activation needs only its
    encoder column, bias (and threshold)."""
    import torch

    return type(sae).__name__ in ("StandardSAE", "JumpReLUSAE") and isinstance(
        getattr(sae, "activation_fn", None), torch.nn.ReLU
    )


def sliced(sae, rows, features):
    """SAELens's encode restricted to ``features`` (same operations, columns of W_enc)."""
    import torch

    index = torch.as_tensor(list(features), dtype=torch.long, device=rows.device)
    sae_in = rows.to(sae.dtype) - sae.b_dec * sae.cfg.apply_b_dec_to_input
    pre = sae_in @ sae.W_enc[:, index] + sae.b_enc[index]
    acts = torch.relu(pre)
    if hasattr(sae, "threshold"):
        acts = acts * (pre > sae.threshold[index]).to(acts.dtype)
    return acts.float()


def feature_activation(site: Site, rows, feature: int):
    """a_feature(rows) [n], differentiable."""
    if sliceable(site.sae):
        return sliced(site.sae, rows, [feature])[:, 0]
    return site.sae.encode(rows.to(site.site.dtype))[:, feature].float()


def decoder_rows(site: Site, features: Sequence[int]):
    return site.site.directions(features).to(site.site.device)


def start_block(sites: Sequence[Site]) -> int | None:
    """The first block whose input (resid_pre) precedes every site's hook, or None (a hook
    outside the blocks, e.g. hook_embed: run from the tokens)."""
    blocks = [s.site.block for s in sites]
    if any(b is None for b in blocks):
        return None
    return min(blocks)


# -- one specialist ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Root:
    """A specialist: (family, layer) of its SAE, the feature, its category."""

    family: str
    layer: int
    feature: int
    category: str


@dataclass
class Downstream:
    """Per later site: sums over the counted positions of the root's texts ([d_sae] each)."""

    change: np.ndarray
    abs_change: np.ndarray
    clean: np.ndarray


@dataclass
class Upstream:
    """Per earlier site: per feature, the summed activation and attribution; the error node's."""

    activation: np.ndarray
    attribution: np.ndarray
    error: float = 0.0


@dataclass
class Verified:
    """The top upstream features (site key, feature, attribution) in rank order, the measured drop
    of m when each is ablated alone, and what remains of m with ranks 1..r ablated together."""

    nodes: list[tuple[tuple[str, int], int, float]]
    drop: np.ndarray
    joint_remaining: np.ndarray


@dataclass
class RootResult:
    root: Root
    n_texts: int
    n_tokens: int
    clean_sum: float  # m: f's activation summed over the counted positions
    downstream: dict[tuple[str, int], Downstream] = field(default_factory=dict)
    upstream: dict[tuple[str, int], Upstream] = field(default_factory=dict)
    verified: Verified | None = None


def _split(sites: Sequence[Site], root: Root) -> tuple[Site, list[Site], list[Site]]:
    own = next((s for s in sites if s.key == (root.family, root.layer)), None)
    if own is None:
        raise SAEError(f"circuits: no SAE loaded for {root.family} layer {root.layer}.")
    earlier = [s for s in sites if s.order < own.order]
    later = [s for s in sites if s.order > own.order]
    return own, earlier, later


def _rows(act, site: Site, counted):
    return site.site.flat(act)[counted]


def _run_to(model, batch: Batch, hooks, rows_mult: int = 1, start: int | None = None):
    """Forward of ``rows_mult`` copies of the batch with ``hooks`` until a hook raises _Stop (or
    the end). With ``start``, the blocks before it are not rerun: the pass starts from the
    clean residual stream entering block ``start`` (the same forward pass, as no hook before
    that block changes anything)."""
    import torch

    attention = batch.attention.repeat(rows_mult, 1)
    if start is not None and start > 0:
        with torch.inference_mode():
            resid = model(batch.tokens, attention_mask=batch.attention, stop_at_layer=start)
        args = dict(start_at_layer=start, attention_mask=attention)
        inputs = resid.repeat(rows_mult, 1, 1)
    else:
        args = dict(attention_mask=attention)
        inputs = batch.tokens.repeat(rows_mult, 1)
    try:
        with model.hooks(fwd_hooks=hooks):
            model(inputs, return_type=None, **args)
    except _Stop:
        pass


def attribution_pass(model, own: Site, earlier: Sequence[Site], root: Root, batch: Batch, acc):
    """One batch of the attribution pass: m, and per earlier site the attribution sums."""
    import torch

    counted = batch.counted
    deltas, acts, out = {}, {}, {}

    def tap(site: Site):
        def hook(act, hook):  # noqa: ARG001
            delta = torch.zeros_like(act, requires_grad=True)
            deltas[site.key], acts[site.key] = delta, act.detach()
            return act + delta

        return hook

    def read_root(act, hook):  # noqa: ARG001
        out["m"] = feature_activation(own, _rows(act, own, counted), root.feature).sum()
        raise _Stop

    hooks = [(s.hook, tap(s)) for s in earlier] + [(own.hook, read_root)]
    with torch.enable_grad():
        _run_to(model, batch, hooks)
        m = out["m"]
        if deltas and m.requires_grad:
            m.backward()
    acc["m"] += float(m.detach())
    for s in earlier:
        up = acc["upstream"][s.key]
        grad = deltas[s.key].grad
        x = _rows(acts[s.key], s, counted).float()
        g = torch.zeros_like(x) if grad is None else _rows(grad, s, counted).float()
        w_dec = s.sae.W_dec.detach().float()
        for lo in range(0, x.shape[0], ENCODE_ROWS):
            xb, gb = x[lo : lo + ENCODE_ROWS], g[lo : lo + ENCODE_ROWS]
            a = encode(s, xb)
            up.activation += a.sum(0).double().cpu().numpy()
            up.attribution += (a * (gb @ w_dec.T)).sum(0).double().cpu().numpy()
            recon = s.sae.decode(a.to(s.site.dtype)).float()
            up.error += float(((xb - recon) * gb).sum())


def downstream_pass(model, own: Site, later: Sequence[Site], root: Root, batch: Batch, acc):
    """One batch of the downstream pass: clean and ablated copies of the batch stacked; f is
    zero-ablated in the second copy; every later site's features encoded in both."""
    import torch

    counted = batch.counted
    n = batch.size
    acts = {}

    def ablate_second(act, hook):  # noqa: ARG001
        flat = own.site.flat(act).clone()
        second = flat[n:]
        rows = second[counted]
        a = encode(own, rows, [root.feature])[:, 0]
        second[counted] = rows - a[:, None] * decoder_rows(own, [root.feature])[0].to(rows.dtype)
        return flat.reshape(act.shape)

    def capture(site: Site):
        def hook(act, hook):  # noqa: ARG001
            acts[site.key] = act
            if site is later[-1]:
                raise _Stop

        return hook

    hooks = [(own.hook, ablate_second)] + [(s.hook, capture(s)) for s in later]
    with torch.inference_mode():
        _run_to(model, batch, hooks, rows_mult=2, start=start_block([own]))
        for s in later:
            flat = s.site.flat(acts[s.key])
            clean_rows, ablated_rows = flat[:n][counted], flat[n:][counted]
            down = acc["downstream"][s.key]
            for lo in range(0, clean_rows.shape[0], ENCODE_ROWS):
                c = encode(s, clean_rows[lo : lo + ENCODE_ROWS])
                d = encode(s, ablated_rows[lo : lo + ENCODE_ROWS]) - c
                down.change += d.sum(0).double().cpu().numpy()
                down.abs_change += d.abs().sum(0).double().cpu().numpy()
                down.clean += c.sum(0).double().cpu().numpy()


def ablation_sets_pass(
    model, own: Site, sites: dict, root: Root, batch: Batch, sets: Sequence[Sequence], pass_tokens
) -> np.ndarray:
    """m (summed over the batch's counted positions) with each of ``sets`` ablated: a set is a
    list of (site key, feature) zero-ablated together; replicas of the batch share passes."""

    counted = batch.counted
    out = np.zeros(len(sets), np.float64)
    per_pass = max(1, pass_tokens // max(1, batch.size * batch.width))
    for lo in range(0, len(sets), per_pass):
        group = sets[lo : lo + per_pass]
        out[lo : lo + len(group)] = _sets_forward(model, own, sites, root, batch, group, counted)
    return out


def _sets_forward(model, own, sites, root, batch, group, counted) -> np.ndarray:
    import torch

    n, r = batch.size, len(group)
    by_site: dict[tuple, list[int]] = {}
    for members in group:
        for key, feature in members:
            by_site.setdefault(key, [])
            if feature not in by_site[key]:
                by_site[key].append(feature)
    masks = {}
    for key, features in by_site.items():
        mask = torch.zeros((r, len(features)), dtype=torch.float32, device=counted.device)
        for i, members in enumerate(group):
            for k, f in members:
                if k == key:
                    mask[i, features.index(f)] = 1.0
        masks[key] = mask.repeat_interleave(n, dim=0)  # [r * n, k]: replica-major rows
    rep_counted = counted.repeat(r, 1)
    result = {}

    def ablate(site: Site):
        features = by_site[site.key]

        def hook(act, hook):  # noqa: ARG001
            flat = site.site.flat(act).clone()
            rows = flat[rep_counted]
            a = encode(site, rows, features)
            row_mask = masks[site.key][rep_counted.nonzero()[:, 0]]
            w = decoder_rows(site, features)
            flat[rep_counted] = rows - ((a * row_mask) @ w).to(rows.dtype)
            return flat.reshape(act.shape)

        return hook

    def read_root(act, hook):  # noqa: ARG001
        a = torch.zeros(rep_counted.shape, dtype=torch.float32, device=counted.device)
        a[rep_counted] = encode(own, _rows(act, own, rep_counted), [root.feature])[:, 0]
        result["m"] = a.reshape(r, n, -1).sum((1, 2)).double().cpu().numpy()
        raise _Stop

    hooks = [(sites[key].hook, ablate(sites[key])) for key in by_site] + [(own.hook, read_root)]
    start = start_block([sites[key] for key in by_site])
    with torch.inference_mode():
        _run_to(model, batch, hooks, rows_mult=r, start=start)
    return result["m"]


def top_upstream(upstream: dict, k: int) -> list[tuple[tuple[str, int], int, float]]:
    """The k features with the largest |attribution| (ties: site order, then feature id)."""
    cands = []
    for order, (key, up) in enumerate(upstream.items()):
        nz = np.flatnonzero(up.attribution)
        cands += [
            (-abs(up.attribution[i]), order, int(i), key, float(up.attribution[i])) for i in nz
        ]
    cands.sort()
    return [(key, f, attr) for _, _, f, key, attr in cands[:k]]


def root_circuit(
    model,
    sites: Sequence[Site],
    root: Root,
    token_ids: Sequence[Sequence[int]],
    verify: int = 10,
    batch_size: int = 8,
    pad_id: int = 0,
    pass_tokens: int = PASS_TOKENS,
    progress=None,
) -> RootResult:
    """Downstream edges, upstream attributions and their verification for one specialist on its
    texts ``token_ids`` (BOS first). Two passes over the texts, one batch in memory at a time."""
    own, earlier, later = _split(sites, root)
    device = own.site.device
    acc = {
        "m": 0.0,
        "upstream": {s.key: Upstream(np.zeros(s.d_sae), np.zeros(s.d_sae)) for s in earlier},
        "downstream": {
            s.key: Downstream(np.zeros(s.d_sae), np.zeros(s.d_sae), np.zeros(s.d_sae))
            for s in later
        },
    }
    n_tokens = 0
    for batch in _batches(token_ids, batch_size, pad_id, device):
        attribution_pass(model, own, earlier, root, batch, acc)
        if later:
            downstream_pass(model, own, later, root, batch, acc)
        n_tokens += int(batch.counted.sum())
        if progress is not None:
            progress.update(batch.size)
    result = RootResult(
        root, len(token_ids), n_tokens, acc["m"], acc["downstream"], acc["upstream"]
    )
    nodes = top_upstream(acc["upstream"], verify)
    if nodes:
        by_key = {s.key: s for s in sites}
        singles = [[(key, f)] for key, f, _ in nodes]
        prefixes = [[(key, f) for key, f, _ in nodes[: r + 1]] for r in range(1, len(nodes))]
        values = np.zeros(len(singles) + len(prefixes))
        for batch in _batches(token_ids, batch_size, pad_id, device):
            values += ablation_sets_pass(
                model, own, by_key, root, batch, singles + prefixes, pass_tokens
            )
        drop = acc["m"] - values[: len(singles)]
        joint = np.concatenate([values[:1], values[len(singles) :]])
        result.verified = Verified(nodes, drop, joint)
    return result


def _batches(token_ids, batch_size, pad_id, device) -> Iterator[Batch]:
    return iter_batches(token_ids, batch_size, pad_id, device)
