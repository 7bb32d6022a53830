"""Write the demo assets: the model (local format), every SAE family, and planted.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .expected import EXPECTED
from .model import DRIVER, N_LAYERS, build_model, driver_tokens
from .saes import (
    CHAIN,
    CHAIN_STEP,
    DETECTOR,
    FAMILIES,
    build_component_sae,
    build_sae,
    build_width_sae,
)
from .vocab import (
    CATEGORY_DIMS,
    D_MODEL,
    MEANING_CATEGORY,
    MEANING_WORDS,
    meaning_categories,
    meaning_tokens,
    training_corpus,
)

LOGIT_TOKEN = " fox"  # the token the planted 'logit' feature's decoder row points at


def logit_token_id(model) -> int:
    """LOGIT_TOKEN's id when it is one token whose own unembedding column scores it first
    (column . column > column . any other column); else the largest-norm column's token."""
    w_u = model.W_U.detach().cpu().numpy()
    ids = model.tokenizer(LOGIT_TOKEN, add_special_tokens=False)["input_ids"]
    if len(ids) == 1 and int(np.argmax(w_u[:, ids[0]] @ w_u)) == ids[0]:
        return int(ids[0])
    return int(np.argmax(np.linalg.norm(w_u, axis=0)))


def reference_activations(model, hook_names: list[str]) -> dict[str, np.ndarray]:
    """Rows (non-BOS positions) of each hook on the built-in corpus' distinct lines."""
    import torch

    lines = sorted(set(training_corpus()))
    rows: dict[str, list[np.ndarray]] = {name: [] for name in hook_names}
    with torch.inference_mode():
        for line in lines:
            _, cache = model.run_with_cache(line, names_filter=lambda n: n in rows)
            for name in hook_names:
                rows[name].append(cache[name][0, 1:].cpu().numpy().astype(np.float64))
    return {name: np.concatenate(parts) for name, parts in rows.items()}


def circuits_plan(res: dict[str, dict[str, int]]) -> dict:
    """What the circuits stage must find in the residual family (docs/circuits.md), all from
    planted structure above (no feature of its own):

    - chain: A = math at layer 0, whose decoder row gives back ``CHAIN_STEP`` (0.48) of the math
      dimension at A's peak, is read by B = math at layer 1 (threshold 0.5, so its encoder gain
      is 2 x B's peak): ablating A at its peak lowers B by 2 x CHAIN_STEP = 0.96 of B's peak,
      linearly (B stays above its threshold), so attribution equals ablation, and A alone builds
      at least 0.9 of B on the math texts (completeness);
    - detector_chain: A = urls at layer 0, whose decoder row is the unit all-ones direction, is
      read by B = urls at layer 1 through the 1/sqrt(d_model) of that row on the urls
      dimension: ablating A at its peak lowers B by 2/sqrt(d_model) of B's peak (a quarter),
      exactly linearly (the LayerNorms ignore the all-ones direction); B is mostly built from
      the urls marker the layer-0 SAE leaves in its error, so its completeness is low;
    - dead_end: urls at the last layer: after its hook only block 3's attention and MLP read
      the model, through a LayerNorm that removes its direction;
    - path: math at every layer (the same decoder direction, read by the next layer's math)."""
    last = str(max(int(layer) for layer in res))

    def node(layer: int, category: str) -> dict:
        return {
            "family": "res",
            "layer": layer,
            "category": category,
            "feature": res[str(layer)][category],
        }

    return {
        "chain": {
            "a": node(0, CHAIN),
            "b": node(1, CHAIN),
            "drop_share_at_peak": 2 * CHAIN_STEP,
            "completeness_at_least": 0.9,
        },
        "detector_chain": {
            "a": node(0, DETECTOR),
            "b": node(1, DETECTOR),
            "drop_share_at_peak": 2 / float(np.sqrt(D_MODEL)),
        },
        "dead_end": node(int(last), DETECTOR),
        "path": {
            "family": "res",
            "category": CHAIN,
            "features": {k: v[CHAIN] for k, v in res.items()},
        },
    }


def sae_dir(out_dir: Path, family: str, layer: int) -> Path:
    return out_dir / "saes" / family / f"layer{layer}"


def asset_files(out_dir: str | Path) -> list[str]:
    """Every file build_demo writes (the demo rule's outputs)."""
    out_dir = Path(out_dir)
    files = [out_dir / "model" / "config.json", out_dir / "model" / "model.safetensors"]
    for family, (_, _, layers) in FAMILIES.items():
        for layer in layers:
            files += [
                sae_dir(out_dir, family, layer) / n for n in ("cfg.json", "sae_weights.safetensors")
            ]
    return [str(p) for p in files + [out_dir / "planted.json"]]


def check_demo_sources(sae_sources: dict, out_dir: str | Path) -> None:
    """Every SAE directory the configuration reads under the demo's directory must be one the
    demo builds (checked when the workflow starts, before the assets exist: otherwise
    Snakemake reports a missing input of the extraction rules). ``sae_sources``: (family,
    layer) -> source, as ``Settings.sae_sources()``."""
    from ..core.errors import ConfigError

    root = Path(out_dir).absolute()
    built = {sae_dir(root, f, layer) for f, (_, _, layers) in FAMILIES.items() for layer in layers}
    for (family, layer), source in sae_sources.items():
        path = Path(source.get("path", "")).absolute() if "path" in source else None
        if path is None or root not in path.parents or path in built:
            continue
        offer = "; ".join(
            f"{f}: layer{'s' * (len(layers) > 1)} {', '.join(map(str, layers))}"
            for f, (_, _, layers) in FAMILIES.items()
        )
        raise ConfigError(
            f"config: saes.{family}.path at layer {layer} is {source['path']!r}, an SAE the "
            f"offline demo does not build (its model has {N_LAYERS} layers, 0 to "
            f"{N_LAYERS - 1}; its SAEs: {offer}). Set `layers` (or saes.{family}.layers) to "
            "layers the demo has, e.g. layers: [0, 1, 2, 3] as in config/demo.yaml, or point "
            f"saes.{family}.path at your own SAEs."
        )


def build_demo(out_dir: str | Path, seed: int = 0) -> dict:
    """Write the demo model and SAEs (local formats) and planted.json; returns the plan."""
    from ..extraction.models import save_local_model

    out_dir = Path(out_dir)
    model, _ = build_model(out_dir / "model", seed)
    save_local_model(model, out_dir / "model")
    token_id = logit_token_id(model)
    w_u = model.W_U.detach().cpu().numpy()
    families: dict[str, dict[str, dict[str, int]]] = {}
    hooks: dict[str, str] = {}
    components = ["attn", "mlp"]
    reference = reference_activations(
        model, [FAMILIES[f][0].format(layer=layer) for f in components for layer in range(N_LAYERS)]
    )
    for family, (hook, _, layers) in FAMILIES.items():
        hooks[family] = hook
        families[family] = {}
        for layer in layers:
            if family == "res":
                sae, roles = build_sae(layer, seed, logit_direction=w_u[:, token_id])
            elif family in components:
                sae, roles = build_component_sae(
                    family, layer, seed, reference[hook.format(layer=layer)]
                )
            else:
                sae, roles = build_width_sae(family, layer, seed)
            sae.save_model(str(sae_dir(out_dir, family, layer)))
            families[family][str(layer)] = roles
    tokens = driver_tokens(model.tokenizer)
    plan: dict = {
        "seed": seed,
        "categories": list(CATEGORY_DIMS),
        "layers": families["res"],
        "families": families,
        "hooks": hooks,
        "logit_token": {"id": token_id, "token": model.tokenizer.decode([token_id])},
        "causal": {
            "driver": {
                "category": DRIVER,
                "token_ids": tokens,
                "tokens": [model.tokenizer.decode([t]) for t in tokens],
            },
            "detector": {"category": DETECTOR},
        },
        "expected": EXPECTED,
        "circuits": circuits_plan(families["res"]),
        "surface": {
            "token": ["python", "urls", "social"],
            "context_gated": "conversational",
            "meaning": {
                "category": MEANING_CATEGORY,
                "words": list(MEANING_WORDS[MEANING_CATEGORY]),
                "tokens": [
                    t for t in meaning_tokens() if MEANING_CATEGORY in meaning_categories(t)
                ],
            },
        },
    }
    (out_dir / "planted.json").write_text(json.dumps(plan, indent=2, sort_keys=True))
    return plan
