"""Entry points of the causal rules (workflow/rules/causal.smk, docs/causal.md).

- ``cells``: the analysis specialists table -> causal/cells.json, every (family, layer)'s
  specialist set. The layer jobs take their set as a param and this file as an ``ancient``
  input, so a threshold change reruns a layer job only when its set changed.
- ``layer``: one (family, layer): model + SAE loaded once, the study's tokens from the tokens
  shards -> the layer tables (cells, features, per_text, top_tokens, steering).
- ``tables``: every layer's tables -> the causal tables (Parquet + CSV, the effects with their
  bootstrap intervals and verdicts) and the causal pages. No model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import polars as pl

from ..core.errors import ConfigError, ModelError, ShardError
from ..core.io import write_parquet, write_tables, write_text
from ..core.tokens import Decoder
from ..core.verdicts import write_verdicts

log = logging.getLogger("sae_specialists.causal")


def cell_key(family: str, layer: int | str) -> str:
    return f"{family}/{int(layer)}"


def specialist_sets(specialists: pl.DataFrame, sae_layers, families=None) -> dict[str, list[list]]:
    """(family, layer) -> sorted [[category, feature], ...] of the reported specialists; empty
    for a family not in ``families`` (None: every family is checked)."""
    found = specialists.filter(pl.col("has_specialist")).sort("sae", "layer", "category")
    sets: dict[str, list[list]] = {cell_key(f, layer): [] for f, layer in sae_layers}
    for row in found.iter_rows(named=True):
        key = cell_key(row["sae"], row["layer"])
        if key in sets and (families is None or row["sae"] in families):
            sets[key].append([row["category"], int(row["feature"])])
    return sets


def cells(smk: Any) -> None:
    """Rule causal_cells."""
    sets = specialist_sets(
        pl.read_parquet(smk.input.specialists), smk.params.sae_layers, smk.params.families
    )
    write_text(json.dumps(sets, indent=1, sort_keys=True) + "\n", smk.output[0])
    log.info("%d specialists in %d SAE layers", sum(map(len, sets.values())), len(sets))


def read_texts(token_paths) -> list:
    """The study's texts as token ids (BOS first), in shard order, from the tokens shards."""
    from ..core.contract import TOKENS_SCHEMA
    from ..core.io import scan_shards
    from .run import TextTokens

    rows = (
        scan_shards(token_paths, TOKENS_SCHEMA, ["text_id", "category", "token_pos", "token_id"])
        .collect()
        .with_row_index("row")
    )
    texts = (
        rows.sort("row")
        .group_by("text_id", maintain_order=True)
        .agg(pl.col("category").first(), pl.col("token_id").sort_by("token_pos"))
    )
    return [
        TextTokens(t, c, tuple(int(i) for i in ids))
        for t, c, ids in texts.select("text_id", "category", "token_id").iter_rows()
    ]


def _write_layer(result, outputs) -> None:
    for name in ("cells", "features", "per_text", "top_tokens", "steering"):
        write_parquet(getattr(result, name), outputs[name])


def layer(smk: Any) -> None:
    """Rule causal_layer: one (family, layer)."""
    from .run import Cell, LayerOptions, empty_layer_result

    p = smk.params
    family, layer_ = str(p.family), int(p.layer)
    cells_ = [Cell(str(c), int(f)) for c, f in p.cells]
    if not cells_:
        log.info("%s layer %d: no specialist, nothing to ablate (model not loaded)", family, layer_)
        _write_layer(empty_layer_result(), smk.output)
        return

    import torch

    from ..extraction.loading import ModelAndSAEs
    from .ablation import FeatureSite
    from .run import run_layer

    torch.set_num_threads(smk.threads)
    texts = read_texts(list(smk.input.tokens))
    if not texts:
        raise ShardError(f"causal: the tokens shards {list(smk.input.tokens)[:2]}... hold no text.")
    job = ModelAndSAEs(dict(p.model), dict(p.saes), p.device, p.dtype)
    model, saes, device = job.load()
    tokenizer = model.tokenizer
    if tokenizer.bos_token_id is None:
        raise ModelError("causal: the model's tokenizer has no BOS token; set bos_token.")
    prompt_ids = [
        [tokenizer.bos_token_id] + tokenizer(prompt, add_special_tokens=False)["input_ids"]
        for prompt in p.prompts
    ]
    check_steering_fits(p.prompts, prompt_ids, int(p.steer_tokens), model, p.steer_scales)
    options = LayerOptions(
        control_draws=int(p.control_draws),
        seed=int(p.seed),
        steer_scales=tuple(float(s) for s in p.steer_scales),
        prompts=tuple(p.prompts),
        steer_tokens=int(p.steer_tokens),
        top_tokens=int(p.top_tokens),
        batch_size=int(p.batch_size),
        modes=tuple(p.modes),
    )
    log.info(
        "%s layer %d: %d specialists, %d texts, device %s, %d torch threads",
        family,
        layer_,
        len(cells_),
        len(texts),
        device,
        torch.get_num_threads(),
    )
    site = FeatureSite(model, saes[0].sae, saes[0].hook_name)
    result = run_layer(
        site,
        family,
        layer_,
        texts,
        cells_,
        options,
        decode=Decoder(tokenizer),  # the project's token text (core/tokens.py)
        prompt_ids=prompt_ids,
    )
    _write_layer(result, smk.output)
    log.info(
        "%s layer %d: %s",
        family,
        layer_,
        ", ".join(f"{part} {s:.1f} s" for part, s in result.seconds.items()),
    )


def _concat(paths) -> pl.DataFrame:
    frames = [pl.read_parquet(path) for path in paths]
    frames = [f for f in frames if f.height] or frames[:1]
    return pl.concat(frames, how="vertical") if frames else pl.DataFrame()


def tables(smk: Any) -> None:
    """Rule causal_tables: effects (bootstrap, verdicts), the joined layer tables."""
    from .effects import layer_effects

    i, p = smk.input, smk.params
    effects = []
    for cells_path, per_text_path in zip(i.cells, i.per_text, strict=True):
        effects.append(
            layer_effects(
                pl.read_parquet(cells_path),
                pl.read_parquet(per_text_path),
                int(p.resamples),
                int(p.seed),
                float(p.ci),
                float(p.min_effect),
            )
        )
    frames = {
        "effects": pl.concat(effects, how="vertical").sort("sae", "layer", "category", "mode"),
        "features": _concat(i.features),
        "per_text": _concat(i.per_text),
        "top_tokens": _concat(i.top_tokens),
        "steering": _concat(i.steering),  # token_ids: a list of ints (the CSV joins them)
    }
    write_tables(frames, smk.output)
    verdicts = frames["effects"].filter(pl.col("mode") == "zero")
    log.info(
        "%d cells: %d detector only",
        verdicts.height,
        int(verdicts["detector_only"].sum()) if verdicts.height else 0,
    )


def pages(smk: Any) -> None:
    """Rule causal_pages: the pages from the effects, top-token and steering tables; with the
    surface stage's records, what each specialist detects (core/crosslinks.py)."""
    from ..core.crosslinks import stage_labels
    from .pages import write_pages

    i, p = smk.input, smk.params
    frames = {
        name: pl.read_parquet(getattr(i, name)) for name in ("effects", "top_tokens", "steering")
    }
    surface = None
    if i.surface:
        surface = (stage_labels(i.surface[0]), str(p.surface_summary))
    write_pages(frames, Path(smk.output.pages), settings=dict(p.settings), surface=surface)


VERDICT_FIELDS = (
    "feature",
    "verdict",
    "detector_only",
    "in_mean",
    "out_mean",
    "ratio",
    "control_in_mean",
    "vs_control_low",
    "vs_control_high",
)


def check_steering_fits(prompts, prompt_ids, steer_tokens: int, model, scales) -> None:
    """Before any ablation: every steering prompt with its generated tokens fits the model's
    context, and every steering scale is finite in the model's dtype (the clamp value, the scale
    times a feature's peak, is checked again where the peaks are known: run.py)."""
    from .checks import check_scales_fit, prompt_fit_problem

    n_ctx = int(model.cfg.n_ctx)
    for index, (prompt, ids) in enumerate(zip(prompts, prompt_ids, strict=True)):
        problem = prompt_fit_problem(index, prompt, len(ids), steer_tokens, n_ctx)
        if problem:
            raise ConfigError(problem)
    check_scales_fit(scales, model.cfg.dtype)


def verdict_records(effects: pl.DataFrame) -> dict[str, dict]:
    """ "family/layer/category" -> the zero-ablation verdict and its headline numbers."""
    rows = effects.filter(pl.col("mode") == "zero").sort("sae", "layer", "category")
    return {
        f"{r['sae']}/{int(r['layer'])}/{r['category']}": {k: r[k] for k in VERDICT_FIELDS}
        for r in rows.iter_rows(named=True)
    }


def verdicts(smk: Any) -> None:
    """Rule causal_verdicts: effects -> verdicts.json."""
    from .board import verdict_records as board_records

    effects = pl.read_parquet(smk.input.effects)
    records = verdict_records(effects)
    write_text(json.dumps(records, indent=1, sort_keys=True) + "\n", smk.output[0])
    write_verdicts(board_records(effects), smk.output.board)
    log.info("%d verdicts", len(records))
