"""The model part of the causal check for one (SAE family, layer): feature statistics, control
draws, ablations, top tokens and steering samples, as tables (docs/causal.md).

Everything here takes loaded objects (a ``FeatureSite``, token ids) and returns polars tables;
reading inputs and writing files is ``causal.entry``'s job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from ..core.jobs import progress as progress_bar
from .ablation import MODES, PASS_TOKENS, Ablation, FeatureSite, ablation_effects, feature_stats
from .ablation import iter_batches as _iter_batches
from .checks import check_scales_fit
from .stats import cell_rng, draw_controls
from .steering import continuation_text, steer

CONTEXT_BEFORE = 12  # tokens of context shown before a top token
CONTEXT_AFTER = 4


@dataclass(frozen=True)
class TextTokens:
    text_id: str
    category: str
    ids: tuple[int, ...]  # BOS first, as in the tokens shards


@dataclass(frozen=True)
class Cell:
    category: str
    feature: int


@dataclass(frozen=True)
class LayerOptions:
    """The settings the model job uses (``causal:`` in the config)."""

    control_draws: int = 1
    seed: int = 0
    steer_scales: tuple[float, ...] = (0.0, 2.0, 5.0)
    prompts: tuple[str, ...] = ()
    steer_tokens: int = 20
    top_tokens: int = 20
    batch_size: int = 8
    modes: tuple[str, ...] = MODES
    pass_tokens: int = PASS_TOKENS


@dataclass
class LayerResult:
    cells: pl.DataFrame  # the layer's cells and their control features
    features: pl.DataFrame  # specialists and controls: role, density, mean, max
    per_text: pl.DataFrame  # per (feature, mode, text): n_positions, clean_loss, delta_loss,
    # top1_changed
    top_tokens: pl.DataFrame  # per cell: the top tokens by loss rise (zero ablation)
    steering: pl.DataFrame  # per (feature, prompt, scale): continuation
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per part


def _bar(total: int, desc: str):
    """Rate and ETA on the console while the job runs (core/jobs.py)."""
    return progress_bar(total=total, desc=desc, unit="texts")


def run_layer(
    site: FeatureSite,
    family: str,
    layer: int,
    texts: Sequence[TextTokens],
    cells: Sequence[Cell],
    options: LayerOptions,
    decode: Callable[[Sequence[int]], str],
    prompt_ids: Sequence[Sequence[int]] = (),
) -> LayerResult:
    """The causal check of one (family, layer). ``decode`` turns token ids into the project's
    token text (the top tokens' contexts; steering continuations use the tokenizer's decode);
    ``prompt_ids``: the steering prompts tokenized (BOS first), in ``options.prompts`` order."""
    token_ids = [t.ids for t in texts]
    categories = [t.category for t in texts]
    pad = int(site.model.tokenizer.pad_token_id or 0)
    label = f"{family} layer {layer}"
    seconds = {}
    start = time.perf_counter()
    with _bar(len(texts), f"causal stats {label}") as bar:
        batches = _iter_batches(token_ids, options.batch_size, pad, site.device)
        stats = feature_stats(site, batches, progress=bar)
    seconds["stats"] = time.perf_counter() - start

    specialists = sorted({c.feature for c in cells})
    controls = {
        c: draw_controls(
            stats.density,
            c.feature,
            specialists,
            options.control_draws,
            cell_rng(options.seed, family, layer, c.category, "control"),
        )
        for c in cells
    }
    control_features = sorted({f for fs in controls.values() for f in fs} - set(specialists))
    ablations = [Ablation(f, m) for f in specialists + control_features for m in options.modes]
    top_cells: dict[int, list[str]] = {}
    for c in cells:
        top_cells.setdefault(c.feature, []).append(c.category)
    means = {f: float(stats.mean[f]) for f in specialists + control_features}
    start = time.perf_counter()
    with _bar(len(texts) * len(ablations), f"causal ablations {label}") as bar:
        result = ablation_effects(
            site,
            token_ids,
            ablations,
            means=means,
            text_categories=categories,
            top_cells=top_cells,
            batch_size=options.batch_size,
            pad_id=pad,
            pass_tokens=options.pass_tokens,
            top_k=options.top_tokens,
            progress=bar,
        )

    seconds["ablations"] = time.perf_counter() - start
    key = {"sae": family, "layer": int(layer)}
    start = time.perf_counter()
    steering = _steering_table(key, site, specialists, stats.max, options, prompt_ids, label)
    seconds["steering"] = time.perf_counter() - start
    return LayerResult(
        cells=_cells_table(key, cells, controls, stats.density),
        features=_features_table(key, specialists, control_features, stats),
        per_text=_per_text_table(key, texts, result, specialists),
        top_tokens=_top_tokens_table(key, texts, cells, result, decode),
        steering=steering,
        seconds=seconds,
    )


def empty_layer_result() -> LayerResult:
    """The tables of a layer without specialists (the model is not loaded)."""
    return LayerResult(
        cells=pl.DataFrame(schema=CELLS_SCHEMA),
        features=pl.DataFrame(schema=FEATURES_SCHEMA),
        per_text=pl.DataFrame(schema=PER_TEXT_SCHEMA),
        top_tokens=pl.DataFrame(schema=TOP_SCHEMA),
        steering=pl.DataFrame(schema=STEERING_SCHEMA),
    )


FEATURES_SCHEMA = {
    "sae": pl.String,
    "layer": pl.Int64,
    "feature": pl.Int64,
    "role": pl.String,
    "density": pl.Float64,
    "mean_activation": pl.Float64,
    "max_activation": pl.Float64,
    "n_tokens": pl.Int64,
}


def _features_table(key, specialists, control_features, stats) -> pl.DataFrame:
    feats = specialists + control_features
    return pl.DataFrame(
        {
            **{k: [v] * len(feats) for k, v in key.items()},
            "feature": feats,
            "role": ["specialist"] * len(specialists) + ["control"] * len(control_features),
            "density": [float(stats.density[f]) for f in feats],
            "mean_activation": [float(stats.mean[f]) for f in feats],
            "max_activation": [float(stats.max[f]) for f in feats],
            "n_tokens": [int(stats.n_tokens)] * len(feats),
        },
        schema=FEATURES_SCHEMA,
    )


CELLS_SCHEMA = {
    "sae": pl.String,
    "layer": pl.Int64,
    "category": pl.String,
    "feature": pl.Int64,
    "density": pl.Float64,
    "controls": pl.List(pl.Int64),
    "control_densities": pl.List(pl.Float64),
}


def _cells_table(key, cells, controls, density) -> pl.DataFrame:
    rows = [
        {
            **key,
            "category": c.category,
            "feature": c.feature,
            "density": float(density[c.feature]),
            "controls": controls[c],
            "control_densities": [float(density[f]) for f in controls[c]],
        }
        for c in cells
    ]
    return pl.DataFrame(rows, schema=CELLS_SCHEMA)


def _per_text_table(key, texts, result, specialists) -> pl.DataFrame:
    n = len(texts)
    frames = []
    for a, delta in result.delta.items():
        frames.append(
            pl.DataFrame(
                {
                    "sae": [key["sae"]] * n,
                    "layer": [key["layer"]] * n,
                    "feature": [a.feature] * n,
                    "role": ["specialist" if a.feature in specialists else "control"] * n,
                    "mode": [a.mode] * n,
                    "text_id": [t.text_id for t in texts],
                    "category": [t.category for t in texts],
                    "n_positions": result.n_positions.astype(np.int64),
                    "clean_loss": result.clean_loss,
                    "delta_loss": delta,
                    "top1_changed": result.top1_changed[a].astype(np.int64),
                },
                schema=PER_TEXT_SCHEMA,
            )
        )
    if not frames:
        return pl.DataFrame(schema=PER_TEXT_SCHEMA)
    # NaN (no loss position) -> null, so means skip it in polars too
    return pl.concat(frames).with_columns(pl.col("clean_loss", "delta_loss").fill_nan(None))


PER_TEXT_SCHEMA = {
    "sae": pl.String,
    "layer": pl.Int64,
    "feature": pl.Int64,
    "role": pl.String,
    "mode": pl.String,
    "text_id": pl.String,
    "category": pl.String,
    "n_positions": pl.Int64,
    "clean_loss": pl.Float64,
    "delta_loss": pl.Float64,
    # loss positions whose top-1 (argmax) next-token prediction the ablation changes
    "top1_changed": pl.Int64,
}

TOP_SCHEMA = {
    "sae": pl.String,
    "layer": pl.Int64,
    "category": pl.String,
    "feature": pl.Int64,
    "rank": pl.Int64,
    "text_id": pl.String,
    "position": pl.Int64,
    "token": pl.String,
    "context_before": pl.String,
    "context_after": pl.String,
    "clean_loss": pl.Float64,
    "ablated_loss": pl.Float64,
    "delta_loss": pl.Float64,
    "activation": pl.Float64,
}


def _top_tokens_table(key, texts, cells, result, decode) -> pl.DataFrame:
    """``position``: the predicted token's position in its text (BOS = 0); the loss is that of
    predicting it from the tokens before; ``activation``: the feature's activation at the
    position the prediction is made from (position - 1)."""
    rows = []
    for c in cells:
        top = result.top.get((c.feature, c.category))
        if top is None:
            continue
        for rank, (delta, (index, t, clean, act)) in enumerate(
            zip(top.delta, top.rows, strict=True), start=1
        ):
            ids = texts[int(index)].ids
            target = int(t) + 1
            rows.append(
                {
                    **key,
                    "category": c.category,
                    "feature": c.feature,
                    "rank": rank,
                    "text_id": texts[int(index)].text_id,
                    "position": target,
                    "token": decode([ids[target]]),
                    "context_before": decode(ids[max(1, target - CONTEXT_BEFORE) : target]),
                    "context_after": decode(ids[target + 1 : target + 1 + CONTEXT_AFTER]),
                    "clean_loss": float(clean),
                    "ablated_loss": float(clean + delta),
                    "delta_loss": float(delta),
                    "activation": float(act),
                }
            )
    return pl.DataFrame(rows, schema=TOP_SCHEMA)


STEERING_SCHEMA = {
    "sae": pl.String,
    "layer": pl.Int64,
    "feature": pl.Int64,
    "prompt_index": pl.Int64,
    "prompt": pl.String,
    "scale": pl.Float64,  # null: unsteered
    "value": pl.Float64,  # the clamped activation (scale x max activation)
    "continuation": pl.String,
    "token_ids": pl.List(pl.Int64),
}


def _steering_table(key, site, specialists, peaks, options, prompt_ids, label):
    """Every clamp of the layer's specialists on every prompt: rows of one generate call; the
    unsteered continuation of a prompt is repeated beside each feature's clamps."""
    scales = [float(s) for s in options.steer_scales]
    for f in specialists:
        check_scales_fit(scales, site.model.cfg.dtype, float(peaks[f]))
    clamps = [None] + [(f, s * float(peaks[f])) for f in specialists for s in scales]
    rows = []
    if not specialists or not prompt_ids:
        return pl.DataFrame(rows, schema=STEERING_SCHEMA)
    with progress_bar(total=1, desc=f"causal steering {label}", unit="call") as bar:
        outs = steer(site, prompt_ids, clamps, options.steer_tokens)
        bar.update(1)
    for p, per_clamp in enumerate(outs):
        for i, feature in enumerate(specialists):
            picked = [(None, None, per_clamp[0])] + [
                (scale, clamps[1 + i * len(scales) + j][1], per_clamp[1 + i * len(scales) + j])
                for j, scale in enumerate(scales)
            ]
            for scale, value, out in picked:
                rows.append(
                    {
                        **key,
                        "feature": feature,
                        "prompt_index": p,
                        "prompt": options.prompts[p],
                        "scale": scale,
                        "value": value,
                        "continuation": continuation_text(site.model.tokenizer, out),
                        "token_ids": [int(t) for t in out],
                    }
                )
    return pl.DataFrame(rows, schema=STEERING_SCHEMA)
