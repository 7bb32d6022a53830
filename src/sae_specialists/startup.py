"""Checks that run when the workflow starts (Snakefile parse), before any job.

They must stay cheap and must not import torch: a config or text mistake should cost seconds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path

import yaml

from .core.errors import ConfigError, SAEError
from .core.settings import YAML_LOADER, Settings, load_settings
from .extraction.texts import load_yaml_category
from .preflight import CheckedFiles, built_by_workflow

UNEQUAL_SIZE_RATIO = 2.0


@lru_cache(maxsize=1)
def sae_lens_directory() -> dict:
    """SAELens's pretrained_saes.yaml, read without importing sae_lens (which imports torch)."""
    spec = importlib.util.find_spec("sae_lens")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained_saes.yaml"
    if not path.is_file():
        return {}
    return yaml.load(path.read_text(), Loader=YAML_LOADER)


def check_sae_releases(settings: Settings) -> None:
    if all(family.release is None for family in settings.saes.values()):
        return
    directory = sae_lens_directory()
    if not directory:
        return
    for family in settings.saes.values():
        if family.release is None:
            continue
        release = directory.get(family.release)
        if release is None:
            close = sorted(r for r in directory if r.split("-")[0] == family.release.split("-")[0])
            raise SAEError(
                f"config: saes.{family.name}.release {family.release!r} is not a SAELens "
                f"release. Similar releases: {close[:25] or 'none'}."
            )
        ids = [sae["id"] for sae in release.get("saes", [])]
        for layer in family.layers:
            sae_id = family.source(layer)["sae_id"]
            if sae_id not in ids:
                raise SAEError(
                    f"config: saes.{family.name}: release {family.release!r} has no SAE id "
                    f"{sae_id!r} (layer {layer}). Valid ids: {ids}"
                )


def check_local_model_layers(settings: Settings) -> None:
    """For a local model whose config.json exists, configured layers must exist."""
    if settings.model.path is None:
        return
    config_file = Path(settings.model.path) / "config.json"
    if not config_file.is_file() or built_by_workflow(config_file, settings.demo):
        return  # built by a rule (demo) or reported by the extraction job
    n_layers = json.loads(config_file.read_text()).get("n_layers")
    bad = sorted(
        {
            layer
            for family in settings.saes.values()
            for layer in family.layers
            if n_layers is not None and family.block(layer) >= n_layers
        }
    )
    if bad:
        raise ConfigError(
            f"config: layers {bad} do not exist: the model in {settings.model.path} has "
            f"{n_layers} layers (0 to {n_layers - 1}). Fix `layers:`."
        )


# Shapes of the hub models of config/examples (TransformerLens names and their aliases), so the
# layers and SAE hooks of a hub model are checked at startup without loading anything; other hub
# models are checked by the extraction job when it loads the model. The test of the examples
# (tests/test_comparison_examples.py) checks these against independent offline sources.
HUB_MODEL_SHAPES = {
    "gpt2-small": {"n_layers": 12, "d_model": 768, "n_heads": 12, "d_head": 64, "d_mlp": 3072},
    "pythia-70m-deduped": {
        "n_layers": 6,
        "d_model": 512,
        "n_heads": 8,
        "d_head": 64,
        "d_mlp": 2048,
    },
    "gemma-2-2b": {"n_layers": 26, "d_model": 2304, "n_heads": 8, "d_head": 256, "d_mlp": 9216},
}
HUB_MODEL_ALIASES = {
    "gpt2": "gpt2-small",
    "openai-community/gpt2": "gpt2-small",
    "EleutherAI/pythia-70m-deduped": "pythia-70m-deduped",
    "google/gemma-2-2b": "gemma-2-2b",
}


def hub_model_shape(name: str | None) -> tuple[str, dict] | None:
    """(canonical name, shape) of a known hub model, None for others."""
    if name is None:
        return None
    canonical = HUB_MODEL_ALIASES.get(name, name)
    shape = HUB_MODEL_SHAPES.get(canonical)
    return (canonical, shape) if shape is not None else None


def check_hub_model_layers(settings: Settings) -> None:
    """For a known hub model: every family's layers and every SAELens SAE's hook block exist,
    and each SAELens release was trained on this model (SAELens's registry names it)."""
    from .extraction.saes import hook_block

    known = hub_model_shape(settings.model.name)
    if known is None:
        return
    canonical, shape = known
    n_layers = shape["n_layers"]
    directory = sae_lens_directory() if any(f.release for f in settings.saes.values()) else {}
    for family in settings.saes.values():
        bad = [layer for layer in family.layers if family.block(layer) >= n_layers]
        if bad:
            raise ConfigError(
                f"config: saes.{family.name} layers {bad} do not exist: {settings.model.name} has "
                f"{n_layers} layers (0 to {n_layers - 1}). Fix `layers:` (or the family's own)."
            )
        release = directory.get(family.release) if family.release else None
        if release is None:
            continue
        trained_on = release.get("model")
        if trained_on and HUB_MODEL_ALIASES.get(trained_on, trained_on) != canonical:
            raise SAEError(
                f"config: saes.{family.name}: release {family.release!r} was trained on "
                f"{trained_on!r}, not on the configured model {settings.model.name!r}. Pick "
                "SAEs of this model (SAELens's pretrained_saes.yaml lists each release's model)."
            )
        for layer in family.layers:
            block = hook_block(family.source(layer)["sae_id"])
            if block is not None and block >= n_layers:
                raise SAEError(
                    f"config: saes.{family.name} layer {layer}: SAE id "
                    f"{family.source(layer)['sae_id']!r} reads block {block} but "
                    f"{settings.model.name} has {n_layers} layers."
                )


HUB_MODEL_CONTEXT = {"gpt2-small": 1024, "pythia-70m-deduped": 2048, "gemma-2-2b": 8192}
PROMPT_TOKENS_MARGIN = 2  # tokens a prompt may have beyond its UTF-8 bytes (BOS, a prefix space)


def check_causal_settings(settings: Settings, model_config: dict | None) -> None:
    """Steering scales finite in the dtype; prompts are text (no lone surrogate) and fit the
    model's context with their generated tokens. The context is known for a local model whose
    config.json exists and for the hub models above; a prompt is tokenized only when its UTF-8
    bytes could exceed it (byte-level tokenizers never make more tokens than bytes), with the
    local tokenizer.json. What cannot be checked here the causal job checks after loading the
    model, before any ablation."""
    from .causal.checks import check_scales_fit, prompt_fit_problem
    from .extraction.texts import LONE_SURROGATE

    causal = settings.causal
    if not causal.enabled:
        return
    check_scales_fit(causal.steer_scales, settings.dtype)
    for index, prompt in enumerate(causal.prompts):
        if LONE_SURROGATE.search(prompt):
            raise ConfigError(
                f"config: causal.prompts[{index}] holds a lone surrogate (half of a UTF-16 pair, "
                "not a character). Fix the escape that produced it."
            )
    known = hub_model_shape(settings.model.name)
    n_ctx = (model_config or {}).get("n_ctx") or (known and HUB_MODEL_CONTEXT.get(known[0]))
    if not n_ctx:
        return
    counter = None
    for index, prompt in enumerate(causal.prompts):
        if len(prompt.encode("utf-8")) + PROMPT_TOKENS_MARGIN + causal.steer_tokens <= n_ctx:
            continue
        counter = counter or _local_token_counter(settings)
        if counter is None:
            return  # no local tokenizer: the causal job checks
        n_tokens = 1 + counter(prompt)
        problem = prompt_fit_problem(index, prompt, n_tokens, causal.steer_tokens, int(n_ctx))
        if problem:
            raise ConfigError(problem)


def _local_token_counter(settings: Settings):
    """Token count of a text with the local model's tokenizer.json (no special tokens), or
    None when there is none."""
    if settings.model.path is None:
        return None
    path = Path(settings.model.path) / "tokenizer.json"
    if not path.is_file():
        return None
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


def check_export_ids(settings: Settings) -> None:
    """No two SAE families export to the same Neuronpedia source, and no two families whose set
    name comes from the config (``export.sae_sets`` or the family's name as a slug: ``res_a`` and
    ``res-a`` are both ``res-a``) share a set name: each family's export stays its own."""
    from .dashboards.neuronpedia_ids import neuronpedia_ids

    model = settings.model
    model_name = model.name or Path(str(model.path).rstrip("/")).name
    directory = sae_lens_directory() if any(f.release for f in settings.saes.values()) else {}
    sources: dict[tuple[str, str], str] = {}
    sets: dict[tuple[str, str], str] = {}
    for (family, layer), source in settings.sae_sources().items():
        np_id = None
        if "release" in source:
            saes = (directory.get(source["release"]) or {}).get("saes", [])
            np_id = next((s.get("neuronpedia") for s in saes if s["id"] == source["sae_id"]), None)
        chosen = settings.export.sae_sets.get(family)
        ids = neuronpedia_ids(
            np_id,
            layer=layer,
            model_name=model_name,
            family=family,
            model_id=settings.export.model_id,
            sae_set=chosen,
        )
        from_release = np_id is not None and not (settings.export.model_id or chosen)
        for seen, key in ((sources, ids.source), (sets, None if from_release else ids.sae_set)):
            if key is None:
                continue
            other = seen.setdefault((ids.model_id, key), family)
            if other != family:
                raise ConfigError(
                    f"config: SAE families {other!r} and {family!r} would both be exported to "
                    f"Neuronpedia as {ids.model_id}/{ids.layer}-{ids.sae_set} (set "
                    f"{ids.sae_set!r}), mixing their features. Give one its own set name: "
                    f"export.sae_sets: {{{family}: <name>}} (lowercase letters, digits, '.', '-')."
                )


HOOK_WIDTH = {
    "hook_resid_pre": "d_model",
    "hook_resid_mid": "d_model",
    "hook_resid_post": "d_model",
    "hook_attn_out": "d_model",
    "hook_mlp_out": "d_model",
    "hook_z": "heads",
    "hook_pre": "d_mlp",
    "hook_post": "d_mlp",
}


# The demo's assets (demo.dir) are outputs of the workflow's own rule (build_demo_assets): their
# contents are never checked at start. Each cluster job's snakemake reads the config again, and
# one that starts while the rule is writing them would find a half-written directory.
def _local_model_config(settings: Settings) -> dict | None:
    if settings.model.path is None:
        return None
    model_dir = Path(settings.model.path)
    if not model_dir.exists() or built_by_workflow(model_dir, settings.demo):
        return None  # built by a rule (demo) or reported by the extraction job
    from .extraction.models import check_local_model_dir

    check_local_model_dir(model_dir)
    return json.loads((model_dir / "config.json").read_text())


def check_local_saes(
    settings: Settings, model_config: dict | None, checked: CheckedFiles | None = None
) -> None:
    """Local SAE directories that exist must be complete, hold a valid cfg.json and finite
    weights of the shapes it gives (``saes.check_sae_files``; a directory that passed is not
    read again until it changes: ``checked``), and fit the model's hooks."""
    from .extraction.saes import (
        check_local_sae_dir,
        check_sae_files,
        hook_block,
        read_sae_cfg,
        sae_hook_name,
    )

    checked = checked or CheckedFiles(None)
    for family in settings.saes.values():
        if family.path_template is None:
            continue
        for layer in family.layers:
            path = Path(family.source(layer)["path"])
            if not path.exists() or built_by_workflow(path, settings.demo):
                continue  # built by a rule (demo) or reported by the extraction job
            check_local_sae_dir(path)
            where = f"config: saes.{family.name} layer {layer} ({path})"
            cfg = read_sae_cfg(path, where)
            hook = sae_hook_name(cfg)
            if not hook:
                raise SAEError(f"{where}: cfg.json has no metadata.hook_name.")
            check_hook_kind(hook, where)
            if model_config is not None:  # first: an SAE of another model is the root cause
                block = hook_block(hook)
                n_layers = model_config.get("n_layers")
                if block is not None and n_layers is not None and block >= n_layers:
                    raise SAEError(
                        f"{where}: the SAE reads hook {hook!r} but the model has only "
                        f"{n_layers} layers. Pick the SAEs trained on this model."
                    )
                check_hook_exists(hook, model_config, where)
                check_sae_width(hook, cfg, model_config, where)
            files = [path / "cfg.json", path / "sae_weights.safetensors"]
            if not checked.passed(files, SAE_CHECK):
                check_sae_files(path, where)  # the weights: shapes against cfg.json, finite
                checked.record(files, SAE_CHECK)


SAE_CHECK = "sae-files/1"  # bump when check_sae_files checks more


def check_sae_width(hook: str, cfg: dict, model_config: dict, where: str) -> None:
    """The SAE's d_in equals the width of the model's hook."""
    kind = HOOK_WIDTH.get(hook.rsplit(".", 1)[-1])
    if kind == "heads":
        width = model_config.get("n_heads", 0) * model_config.get("d_head", 0)
    else:
        width = model_config.get(kind) if kind else None
    if width and cfg.get("d_in") != width:
        raise SAEError(
            f"{where}: the SAE has d_in={cfg.get('d_in')} but the model's {hook!r} has "
            f"width {width}. The SAE was trained on another model or hook."
        )


# TransformerLens hooks whose activations are not one vector per token
NOT_PER_TOKEN_HOOKS = {
    "hook_pattern": "[batch, head, query position, key position] (attention weights)",
    "hook_attn_scores": "[batch, head, query position, key position] (attention scores)",
}
# every hook a TransformerLens HookedTransformer block has (some only with options set)
BLOCK_HOOKS = (
    "hook_resid_pre hook_resid_mid hook_resid_post hook_attn_out hook_mlp_out hook_attn_in "
    "hook_mlp_in hook_q_input hook_k_input hook_v_input attn.hook_q attn.hook_k attn.hook_v "
    "attn.hook_z attn.hook_result attn.hook_rot_q attn.hook_rot_k attn.hook_pattern "
    "attn.hook_attn_scores mlp.hook_pre mlp.hook_pre_linear mlp.hook_post ln1.hook_scale "
    "ln1.hook_normalized ln2.hook_scale ln2.hook_normalized"
).split()
TOP_HOOKS = ("hook_embed", "hook_pos_embed", "hook_tokens", "ln_final.hook_scale")
TOP_HOOKS += ("ln_final.hook_normalized",)


def check_hook_kind(hook: str, where: str) -> None:
    """The engine encodes one vector per token: an SAE on an attention pattern is an error."""
    from .extraction.encode import PER_TOKEN_HOOKS

    shape = NOT_PER_TOKEN_HOOKS.get(hook.rsplit(".", 1)[-1])
    if shape:
        raise SAEError(
            f"{where}: the SAE reads hook {hook!r}, whose activations are {shape}, not one "
            f"vector per token. {PER_TOKEN_HOOKS}"
        )


def model_hook_names(model_config: dict) -> list[str]:
    """Every hook name a TransformerLens model of this config may have."""
    n_layers = int(model_config.get("n_layers") or 0)
    blocks = [f"blocks.{b}.{h}" for b in range(n_layers) for h in BLOCK_HOOKS]
    return [*TOP_HOOKS, *blocks]


def check_hook_exists(hook: str, model_config: dict, where: str) -> None:
    """``hook`` is a hook of the model (a local model's config.json, or a known hub model)."""
    from .extraction.hooks import similar_hooks

    names = model_hook_names(model_config)
    if hook in names:
        return
    n_layers = model_config.get("n_layers")
    raise SAEError(
        f"{where}: the SAE reads hook {hook!r}, which the model ({n_layers} layers) does not "
        f"have; similar hooks: {similar_hooks(hook, names)}. Pick the SAE trained on this "
        "model's hook, or fix metadata.hook_name in its cfg.json."
    )


def text_warnings(categories: dict[str, Path], n_datasets: int = 0) -> list[str]:
    """Load every YAML category (errors raise); warn on duplicates and unequal sizes."""
    by_text: dict[str, list[str]] = defaultdict(list)
    sizes = {}
    for category, path in categories.items():
        if path.suffix not in (".yaml", ".yml"):
            continue  # large corpora are checked by their extraction jobs
        texts = load_yaml_category(path, category)
        sizes[category] = len(texts)
        for text in texts:
            by_text[text.text].append(text.text_id)
    warnings = []
    for ids in by_text.values():
        if len(ids) > 1:
            warnings.append(
                f"texts: the same text appears {len(ids)} times: {', '.join(ids)}. It counts "
                "once per occurrence in every score; remove the copies unless intended."
            )
    if sizes and max(sizes.values()) > UNEQUAL_SIZE_RATIO * min(sizes.values()):
        listing = ", ".join(f"{c}={n}" for c, n in sorted(sizes.items()))
        warnings.append(
            f"texts: category sizes are very unequal ({listing}). The specialist score "
            "n_in - n_out ranges over -(N - n_c) .. n_c, so scores of different categories are "
            "not on the same scale; compare them as fractions or balance the categories."
        )
    if len(categories) + n_datasets == 1:  # n_datasets: categories drawn from datasets
        warnings.append(
            "texts: only one category; every specialist score is n_in - 0 (no texts outside)."
        )
    return warnings


def startup_checks(
    config: dict,
    schema_path: str | Path,
    config_files: Iterable[str | Path] = (),
    overrides: Mapping | None = None,
    checked_files: str | os.PathLike | None = None,
) -> Settings:
    """Everything the Snakefile checks before scheduling a job; returns the settings.

    ``config_files`` and ``overrides`` (the --config values) are what Snakemake merged into
    ``config``: bounded and coerced first (preflight.py). ``checked_files``: where the record
    of input files that passed their checks is kept (``preflight.CheckedFiles``; the Snakefile
    passes ``preflight.CHECKED_FILES``; None: every file is checked again)."""
    from . import preflight
    from .extraction.datasets import check_dataset_specs, dataset_specs, file_categories

    preflight.check_config_files(config_files)
    preflight.check_config_object(config)
    schema = preflight.load_schema(schema_path)
    config = preflight.apply_overrides(config, overrides, schema)
    preflight.check_numbers(config, schema)
    settings = load_settings(config, schema_path)
    preflight.check_results_dir(settings.results_dir)
    check_hub_model_layers(settings)  # first: a layer the model lacks is the root cause
    check_sae_releases(settings)
    check_local_model_layers(settings)
    preflight.check_inputs_exist(settings)
    check_export_ids(settings)
    checked = preflight.CheckedFiles(checked_files)
    model_config = _local_model_config(settings)
    check_local_saes(settings, model_config, checked)
    preflight.check_local_sae_hooks(settings)
    check_causal_settings(settings, model_config)
    # file categories are read; dataset categories are checked offline (spec, local files)
    categories = file_categories(settings)
    check_dataset_specs(settings)
    dir_warnings = (
        [] if isinstance(settings.texts, Mapping) else preflight.texts_dir_warnings(settings.texts)
    )
    warnings = dir_warnings + text_warnings(categories, len(dataset_specs(settings)))
    preflight.check_text_files(settings, categories, checked)
    checked.save()
    for warning in warnings:
        print(f"WARNING {warning}", file=sys.stderr)
    return settings


def single_threaded_polars() -> str:
    """Make every job of this run use one polars thread (unless POLARS_MAX_THREADS is set).

    Jobs inherit the Snakemake process's environment (local subprocesses, and SLURM jobs through
    sbatch's default --export=ALL), so setting it here, before any job starts, reaches them all.
    Why: polars' multi-threaded streaming group-by keeps per-thread partial tables whose memory
    grows with the input (measured: 0.8 GB -> 2.1 GB from 21 M to 210 M per-text rows with 2
    threads, flat at 0.8 GB with one), which would make an analysis job's memory depend on the
    corpus size. Parallelism comes from Snakemake running jobs side by side instead.
    """
    return os.environ.setdefault("POLARS_MAX_THREADS", "1")


# -- the hub: what a run would download, checked when the workflow is read and before its first
# job (extraction/hub.py: probe, cache)


def hub_items(model_spec: Mapping | None, sae_sources: Mapping) -> list:
    """The ``extraction.hub.HubItem`` of the model (a hub name; a local path needs nothing) and
    of every SAELens SAE among ``sae_sources`` ((family, layer) -> source): what a job with
    these ``model`` and ``saes`` params downloads."""
    from .extraction.hub import HubItem, model_repo

    items = []
    if model_spec and model_spec.get("name"):
        name = str(model_spec["name"])
        items.append(HubItem(f"model {name!r}", model_repo(name)))
    sources = sorted(dict(sae_sources or {}).items())
    # SAELens's directory is a large YAML (~1.5 s to read): only hub SAEs need it
    directory = sae_lens_directory() if any(s.get("release") for _, s in sources) else {}
    for (family, layer), source in sources:
        release = directory.get(source.get("release")) or {}
        entry = next((s for s in release.get("saes", []) if s["id"] == source.get("sae_id")), None)
        if entry is None:
            continue  # a local SAE, or an unknown id (check_sae_releases reports it)
        items.append(
            HubItem(
                f"SAE {source['release']}/{source['sae_id']} (family {family!r}, layer {layer})",
                entry.get("repo_id", release.get("repo_id", "")),
                entry.get("path", ""),
            )
        )
    return items


def hub_warning(settings: Settings) -> str | None:
    """When the workflow is read (`snakemake -n` too): None when every model and SAE of the
    config can be loaded (hub reachable, or all in the HF cache); else a warning naming the
    missing ones. Whether a run fails depends on the jobs it has to run (check_hub_for_jobs):
    re-analysing existing shards needs no model."""
    from .extraction.hub import unavailable, unavailable_message

    missing = unavailable(hub_items(settings.model.spec, settings.sae_sources()))
    if not missing:
        return None
    return (
        "a job that loads the model or these SAEs cannot run: "
        + unavailable_message(missing)
        + " A run that has such a job to do stops before its first job."
    )


def check_hub_for_jobs(job_params: Iterable[Mapping]) -> None:
    """Before the first job (the Snakefile's onstart, with the params of every job to run): the
    models and SAEs those jobs load (their ``model`` and ``saes`` params) must be reachable on
    the hub or in the HF cache; else HubUnreachableError naming each, within seconds instead of
    a job failing after ~40-60 s of imports and retries. Jobs that load nothing (analyses of
    existing shards) need neither."""
    from .core.errors import HubUnreachableError
    from .extraction.hub import unavailable, unavailable_message

    items = []
    for params in job_params:
        items += hub_items(params.get("model"), params.get("saes") or {})
    missing = unavailable(items)
    if missing:
        raise HubUnreachableError("cannot load what the jobs need: " + unavailable_message(missing))
