"""Remove one SAE feature at its hook and measure the model's next-token loss (docs/causal.md).

Definitions, for a text tokenized as BOS + tokens (positions 0..n-1):

- *counted positions*: 1..n-1 (BOS and padding excluded), as in the extraction;
- *ablation* of feature f: at every counted position, the activation x at the SAE's hook becomes
  ``x - a_f(x) * W_dec[f]`` (zero ablation) or ``x + (mean_f - a_f(x)) * W_dec[f]`` (mean
  ablation; mean_f = f's mean activation over all counted tokens of the study). Only f's
  contribution changes: the SAE's reconstruction error and every other feature's share of x are
  kept, because x itself is edited rather than replaced by a reconstruction;
- *loss positions*: the predictions made at counted positions that have a next token
  (t = 1..n-2 predicts token t+1). The prediction at BOS is left out: no ablation reaches it;
- per-text loss: mean next-token cross-entropy over the loss positions; Δloss = ablated - clean.

Passes. Texts are batched by length (like the extraction). Per batch the clean activation at the
hook is computed once. When the hook is a residual-stream hook (``blocks.L.hook_resid_pre`` or
``hook_resid_post``) the ablated passes *start* at that block from the edited residual
(``start_at_layer``): exactly the forward pass a hook would give, without recomputing the blocks
before it. Other hooks run the whole model with a hook that swaps in the edited activation.
Several ablations share one forward pass as replicas stacked along the batch dimension (about
``pass_tokens`` token rows per pass); logits are computed for loss positions only, in blocks of
``LOGIT_ELEMENTS`` logits, so no [batch, seq, vocab] tensor is ever built.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import SAEError

PASS_TOKENS = 8192  # token rows (replicas x texts x positions) per ablated forward pass
LOGIT_ELEMENTS = 1 << 25  # logits per unembedding block (128 MB in float32)
ENCODE_ROWS = 1024  # rows per SAE encode block (a [rows, d_sae] buffer)
TOP_TOKENS = 20
MODES = ("zero", "mean")
RESID_HOOK = re.compile(r"^blocks\.(\d+)\.hook_resid_(pre|post)$")
BLOCK_HOOK = re.compile(r"^blocks\.(\d+)\.")


# -- batches -----------------------------------------------------------------------------------


@dataclass
class Batch:
    """A length-sorted group of texts, right-padded."""

    index: np.ndarray  # [B] positions of the texts in the job's text list
    tokens: object  # torch.LongTensor [B, S]
    attention: object  # torch.LongTensor [B, S]: 1 on real tokens
    counted: object  # torch.BoolTensor [B, S]: real and not BOS
    loss_mask: object  # torch.BoolTensor [B, S-1]: prediction at t is a loss position

    @property
    def size(self) -> int:
        return len(self.index)

    @property
    def width(self) -> int:
        return int(self.tokens.shape[1])


def batch_order(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Text indices grouped into batches of similar length (longest first, stable)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [np.asarray(order[i : i + batch_size]) for i in range(0, len(order), batch_size)]


def make_batch(
    token_ids: Sequence[Sequence[int]], index: np.ndarray, pad_id: int, device="cpu"
) -> Batch:
    import torch

    lengths = [len(token_ids[i]) for i in index]
    width = max(lengths)
    tokens = torch.full((len(index), width), int(pad_id), dtype=torch.long)
    attention = torch.zeros((len(index), width), dtype=torch.long)
    for row, i in enumerate(index):
        tokens[row, : lengths[row]] = torch.as_tensor(token_ids[i], dtype=torch.long)
        attention[row, : lengths[row]] = 1
    real = attention.bool()
    counted = real.clone()
    counted[:, 0] = False
    loss_mask = counted[:, :-1] & real[:, 1:]
    return Batch(
        np.asarray(index),
        tokens.to(device),
        attention.to(device),
        counted.to(device),
        loss_mask.to(device),
    )


def iter_batches(
    token_ids: Sequence[Sequence[int]], batch_size: int, pad_id: int, device="cpu"
) -> Iterator[Batch]:
    """Batches built one at a time (memory: one batch)."""
    for index in batch_order([len(t) for t in token_ids], batch_size):
        yield make_batch(token_ids, index, pad_id, device)


# -- where the SAE reads the model ---------------------------------------------------------------


class FeatureSite:
    """One SAE at its hook in one model: the clean activation there, the forward pass from an
    edited activation, and the next-token loss at the loss positions."""

    def __init__(self, model, sae, hook_name: str | None = None):
        import torch

        self.model = model
        self.sae = sae
        self.hook = hook_name or getattr(sae.cfg.metadata, "hook_name", None)
        if not self.hook or self.hook not in model.hook_dict:
            raise SAEError(
                f"causal: the SAE's hook {self.hook!r} is not a hook of the model; pick SAEs "
                "trained on this model (cfg.metadata.hook_name)."
            )
        norm = getattr(sae.cfg, "normalize_activations", "none")
        if norm not in ("none", None):
            raise SAEError(
                f"causal: the SAE at {self.hook} normalises its input at run time "
                f"(normalize_activations={norm!r}), so a feature's contribution is not "
                "a_f * W_dec[f]; the causal check supports SAEs with normalize_activations "
                "'none' (SAELens folds 'expected_average_only_in' into the weights at load)."
            )
        self.d_in = int(sae.cfg.d_in)
        self.n_layers = int(model.cfg.n_layers)
        match = RESID_HOOK.match(self.hook)
        if match:
            layer = int(match.group(1))
            self.resume = layer if match.group(2) == "pre" else layer + 1
        else:
            self.resume = None
        block = BLOCK_HOOK.match(self.hook)
        self.block = int(block.group(1)) if block else None
        self.W_U = model.W_U.detach()
        self.b_U = model.b_U.detach()
        self.softcap = getattr(model.cfg, "output_logits_soft_cap", None)
        self.device = next(model.parameters()).device
        self.dtype = sae.W_dec.dtype
        self._torch = torch

    def fused(self):
        """The extraction's fused torch ops for TransformerLens's unfused modules (same
        functions, float rounding apart; the module whose hook is edited keeps its own)."""
        from ..extraction.hooks import fast_modules

        return fast_modules(self.model, [self.hook])

    # activations ---------------------------------------------------------------------------
    def clean_activation(self, batch: Batch):
        """The activation at the hook, [B, S, ...] (one forward up to the hook)."""
        model = self.model
        if self.resume is not None:
            return model(batch.tokens, attention_mask=batch.attention, stop_at_layer=self.resume)
        stop = self.block + 1 if self.block is not None else None
        _, cache = model.run_with_cache(
            batch.tokens,
            attention_mask=batch.attention,
            names_filter=[self.hook],
            stop_at_layer=stop,
            return_cache_object=False,
        )
        return cache[self.hook]

    def flat(self, acts):
        """[B, S, ...] -> [B, S, d_in] (hook_z-style [.., heads, d_head] is flattened)."""
        flat = acts.reshape(acts.shape[0], acts.shape[1], -1)
        if flat.shape[-1] != self.d_in:
            raise SAEError(
                f"causal: hook {self.hook} gives width {flat.shape[-1]} but the SAE expects "
                f"d_in={self.d_in}; the SAE was trained on another model or hook."
            )
        return flat

    def encode_rows(self, rows, features=None):
        """SAE activations of rows [n, d_in] -> [n, d_sae] or [n, len(features)] (in blocks)."""
        torch = self._torch
        width = self.sae.cfg.d_sae if features is None else len(features)
        out = torch.empty((rows.shape[0], width), dtype=torch.float32, device=rows.device)
        for lo in range(0, rows.shape[0], ENCODE_ROWS):
            block = self.sae.encode(rows[lo : lo + ENCODE_ROWS].to(self.dtype))
            out[lo : lo + ENCODE_ROWS] = block if features is None else block[:, features]
        return out

    def directions(self, features: Sequence[int]):
        """Decoder rows W_dec[features], [k, d_in]."""
        index = self._torch.as_tensor(list(features), dtype=self._torch.long)
        return self.sae.W_dec.detach()[index].float()

    # forward from the hook -----------------------------------------------------------------
    def final_residual(self, tokens, attention, edited):
        """Residual stream before the final norm of the texts ``tokens`` [N, S] whose hook
        activation is ``edited`` [N, S, ...]."""
        model = self.model
        if self.resume is not None:
            return model(
                edited,
                start_at_layer=self.resume,
                stop_at_layer=self.n_layers,
                attention_mask=attention,
            )

        def swap(act, hook):  # noqa: ARG001 - TransformerLens hook signature
            return edited.reshape(act.shape).to(act.dtype)

        return model.run_with_hooks(
            tokens,
            attention_mask=attention,
            stop_at_layer=self.n_layers,
            fwd_hooks=[(self.hook, swap)],
        )

    def losses(self, residual, tokens, mask):
        """Next-token cross-entropy at the positions ``mask`` [N, S-1] (prediction at t of
        token t+1), in row-major order; logits only for those positions."""
        return self.predictions(residual, tokens, mask)[0]

    def predictions(self, residual, tokens, mask):
        """(loss, top-1 token id) of the next-token prediction at the positions ``mask``
        [N, S-1], in row-major order: the cross-entropy and the argmax of the same logits
        (ties: the lowest id, torch.argmax), computed for those positions only."""
        import torch.nn.functional as F

        torch = self._torch
        model = self.model
        if model.cfg.normalization_type is not None:
            residual = model.ln_final(residual)
        rows = residual[:, :-1][mask]
        targets = tokens[:, 1:][mask]
        out = torch.empty(rows.shape[0], dtype=torch.float32, device=rows.device)
        top1 = torch.empty(rows.shape[0], dtype=torch.long, device=rows.device)
        step = max(1, LOGIT_ELEMENTS // self.W_U.shape[1])
        for lo in range(0, rows.shape[0], step):
            hi = lo + step
            logits = torch.addmm(self.b_U, rows[lo:hi], self.W_U).float()
            if self.softcap is not None and self.softcap > 0:
                logits = self.softcap * torch.tanh(logits / self.softcap)
            out[lo:hi] = F.cross_entropy(logits, targets[lo:hi], reduction="none")
            top1[lo:hi] = logits.argmax(-1)
        return out, top1

    def clean_losses(self, batch: Batch, clean):
        """[B, S-1]: the clean loss at the loss positions, 0 elsewhere."""
        return self.clean_predictions(batch, clean)[0]

    def clean_predictions(self, batch: Batch, clean):
        """([B, S-1] clean loss, [B, S-1] clean top-1 token id) at the loss positions (0 and -1
        elsewhere)."""
        torch = self._torch
        residual = self.final_residual(batch.tokens, batch.attention, clean)
        loss, top1 = self.predictions(residual, batch.tokens, batch.loss_mask)
        dense = torch.zeros(batch.loss_mask.shape, dtype=torch.float32, device=self.device)
        dense_top1 = torch.full(batch.loss_mask.shape, -1, dtype=torch.long, device=self.device)
        dense[batch.loss_mask] = loss
        dense_top1[batch.loss_mask] = top1
        return dense, dense_top1


# -- feature statistics (one pass up to the hook) ------------------------------------------------


@dataclass
class FeatureStats:
    """Per feature, over all counted tokens of the texts."""

    n_tokens: int
    density: np.ndarray  # fraction of counted tokens with activation > 0
    mean: np.ndarray  # mean activation (zeros included)
    max: np.ndarray  # maximum activation


def feature_stats(site: FeatureSite, batches: Iterable[Batch], progress=None) -> FeatureStats:
    """Token density, mean and max activation of every feature (no unembedding computed)."""
    torch = site._torch
    d_sae = int(site.sae.cfg.d_sae)
    count = torch.zeros(d_sae, dtype=torch.float64)
    total = torch.zeros(d_sae, dtype=torch.float64)
    peak = torch.zeros(d_sae, dtype=torch.float32)
    n_tokens = 0
    with torch.inference_mode(), site.fused():
        for batch in batches:
            rows = site.flat(site.clean_activation(batch))[batch.counted]
            for lo in range(0, rows.shape[0], ENCODE_ROWS):
                acts = site.encode_rows(rows[lo : lo + ENCODE_ROWS]).cpu()
                count += (acts > 0).sum(0, dtype=torch.float64)
                total += acts.sum(0, dtype=torch.float64)
                peak = torch.maximum(peak, acts.max(0).values)
            n_tokens += int(rows.shape[0])
            if progress is not None:
                progress.update(batch.size)
    denom = max(n_tokens, 1)
    return FeatureStats(
        n_tokens, (count / denom).numpy(), (total / denom).numpy(), np.maximum(peak.numpy(), 0.0)
    )


# -- ablations ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ablation:
    feature: int
    mode: str  # "zero" | "mean"


@dataclass
class TopTokens:
    """The loss positions where ablating a feature raised the loss most, for one category."""

    k: int = TOP_TOKENS
    delta: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    rows: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float64))
    # rows: text index, prediction position t, clean loss, activation of the feature at t

    def offer(self, delta: np.ndarray, rows: np.ndarray) -> None:
        if not len(delta):
            return
        delta = np.concatenate([self.delta, delta])
        rows = np.concatenate([self.rows, rows])
        # highest Δ first; ties: earlier text, then earlier position (deterministic)
        order = np.lexsort((rows[:, 1], rows[:, 0], -delta))[: self.k]
        self.delta, self.rows = delta[order], rows[order]


@dataclass
class AblationResult:
    n_positions: np.ndarray  # [n_texts] loss positions per text
    clean_loss: np.ndarray  # [n_texts] mean clean loss (NaN: no loss position)
    delta: dict[Ablation, np.ndarray]  # [n_texts] mean Δloss per text (NaN: no loss position)
    top: dict[tuple[int, str], TopTokens]  # (feature, category) -> top tokens (zero ablation)
    # [n_texts] loss positions whose top-1 (argmax) next-token prediction the ablation changes
    top1_changed: dict[Ablation, np.ndarray]


def ablation_effects(
    site: FeatureSite,
    token_ids: Sequence[Sequence[int]],
    ablations: Sequence[Ablation],
    means: dict[int, float] | None = None,
    text_categories: Sequence[str] | None = None,
    top_cells: dict[int, Sequence[str]] | None = None,
    batch_size: int = 8,
    pad_id: int = 0,
    pass_tokens: int = PASS_TOKENS,
    top_k: int = TOP_TOKENS,
    progress=None,
) -> AblationResult:
    """Per-text Δloss of every ablation (one clean pass per batch, ablations stacked), and per
    text the number of loss positions whose top-1 next-token prediction it changes (the argmax
    of the logits the losses are computed from: no further pass).

    ``means``: feature -> mean activation (needed by mean ablations). ``top_cells``: feature ->
    categories whose texts' top tokens are kept (zero ablation; needs ``text_categories``).
    ``progress`` is updated by one per text and ablation pass."""
    torch = site._torch
    ablations = list(dict.fromkeys(ablations))
    means = means or {}
    missing = [a.feature for a in ablations if a.mode == "mean" and a.feature not in means]
    if missing:
        raise ValueError(f"mean ablation needs the mean activation of features {missing}")
    bad = [a.mode for a in ablations if a.mode not in MODES]
    if bad:
        raise ValueError(f"unknown ablation mode(s) {bad}; use {MODES}")
    top_cells = {int(f): list(c) for f, c in (top_cells or {}).items()}
    n_texts = len(token_ids)
    sums = {a: np.zeros(n_texts, np.float64) for a in ablations}
    changed_top1 = {a: np.zeros(n_texts, np.int64) for a in ablations}
    clean_sum = np.zeros(n_texts, np.float64)
    n_positions = np.zeros(n_texts, np.int64)
    top = {(f, c): TopTokens(top_k) for f, cats in top_cells.items() for c in cats}
    categories = np.asarray(text_categories) if text_categories is not None else None
    features = sorted({a.feature for a in ablations})
    column = {f: i for i, f in enumerate(features)}
    directions = site.directions(features).to(site.device) if features else None
    mean_values = torch.tensor(
        [float(means.get(f, 0.0)) for f in features], dtype=torch.float32, device=site.device
    )

    with torch.inference_mode(), site.fused():
        for batch in iter_batches(token_ids, batch_size, pad_id, site.device):
            clean = site.clean_activation(batch)
            flat = site.flat(clean).float()
            counted = batch.counted
            acts = torch.zeros(
                (*counted.shape, len(features)), dtype=torch.float32, device=site.device
            )
            if features:
                acts[counted] = site.encode_rows(flat[counted], features)
            base, base_top1 = site.clean_predictions(batch, clean)
            index = batch.index
            loss_rows = batch.loss_mask.nonzero()[:, 0].cpu().numpy()
            np.add.at(clean_sum, index[loss_rows], base[batch.loss_mask].double().cpu().numpy())
            n_positions[index] += batch.loss_mask.sum(1).cpu().numpy()
            items = [
                _Item(a, *_change(acts, counted, mean_values, column[a.feature], a.mode, batch))
                for a in ablations
            ]
            for group in _passes([i for i in items if len(i.rows)], pass_tokens, batch.width):
                rows = torch.cat([i.rows for i in group])
                edited = torch.cat(
                    [
                        flat[i.rows] + i.change[..., None] * directions[column[i.ablation.feature]]
                        for i in group
                    ]
                )
                residual = site.final_residual(
                    batch.tokens[rows],
                    batch.attention[rows],
                    edited.reshape(-1, *clean.shape[1:]).to(clean.dtype),
                )
                mask = torch.cat([i.mask for i in group])
                loss, top1 = site.predictions(residual, batch.tokens[rows], mask)
                delta = (loss - base[rows][mask]).double().cpu().numpy()
                flipped = (top1 != base_top1[rows][mask]).cpu().numpy().astype(np.int64)
                lo = 0
                for item in group:
                    n = int(item.mask.sum())
                    where = item.mask.nonzero().cpu().numpy()  # (row in item, t)
                    batch_rows = item.rows.cpu().numpy()[where[:, 0]]
                    d = delta[lo : lo + n]
                    a = item.ablation
                    np.add.at(sums[a], index[batch_rows], d)
                    np.add.at(changed_top1[a], index[batch_rows], flipped[lo : lo + n])
                    lo += n
                    if a.mode == "zero" and a.feature in top_cells:
                        _offer_top(
                            top,
                            a.feature,
                            top_cells[a.feature],
                            d,
                            index[batch_rows],
                            where[:, 1],
                            base[item.rows][item.mask].double().cpu().numpy(),
                            acts[item.rows][..., column[a.feature]][:, :-1][item.mask],
                            categories,
                        )
            if progress is not None:
                progress.update(batch.size * len(ablations))
    with np.errstate(invalid="ignore", divide="ignore"):
        counts = np.where(n_positions > 0, n_positions, np.nan)
        delta = {a: sums[a] / counts for a in ablations}
        clean_loss = clean_sum / counts
    return AblationResult(n_positions, clean_loss, delta, top, changed_top1)


@dataclass
class _Item:
    """One ablation on the batch rows it changes."""

    ablation: Ablation
    rows: object  # LongTensor [n]: batch rows where the edit changes the activation
    change: object  # [n, S]: new - old activation of the feature (0 off the counted positions)
    mask: object  # [n, S-1]: loss positions at or after the row's first change


def _change(acts, counted, mean_values, col: int, mode: str, batch: Batch):
    """Rows an ablation changes, the change, and the loss positions it can reach.

    A prediction at t depends on positions <= t only, so predictions before a row's first
    change keep their clean loss exactly (Δ = 0) and rows without a change are not rerun."""
    import torch

    a = acts[..., col]
    target = mean_values[col] if mode == "mean" else 0.0
    change = (target - a) * counted.float()
    changed = change != 0
    rows = changed.any(1).nonzero()[:, 0]
    first = changed[rows].float().argmax(1)
    positions = torch.arange(batch.width - 1, device=counted.device)
    mask = batch.loss_mask[rows] & (positions[None] >= first[:, None])
    return rows, change[rows], mask


def _passes(items: list[_Item], pass_tokens: int, width: int) -> Iterator[list[_Item]]:
    """Items grouped so that a forward pass holds about ``pass_tokens`` token rows."""
    group, rows = [], 0
    for item in items:
        n = len(item.rows)
        if group and (rows + n) * width > pass_tokens:
            yield group
            group, rows = [], 0
        group.append(item)
        rows += n
    if group:
        yield group


def _offer_top(
    top, feature, categories_of_feature, delta, texts, t, clean, activation, categories
) -> None:
    """Offer the positions with Δ > 0 of one ablation pass to its cells' top lists."""
    activation = activation.cpu().numpy()
    for category in categories_of_feature:
        keep = delta > 0
        if categories is not None:
            keep &= categories[texts] == category
        keep = np.flatnonzero(keep)
        if not len(keep):
            continue
        # highest Δ first; ties: earlier text, then earlier position
        k = top[(feature, category)].k
        sel = keep[np.lexsort((t[keep], texts[keep], -delta[keep]))[:k]]
        rows = np.stack([texts[sel], t[sel], clean[sel], activation[sel]], axis=1)
        top[(feature, category)].offer(delta[sel], rows)
