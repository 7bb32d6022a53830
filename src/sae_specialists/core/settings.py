"""Typed settings: one frozen dataclass per config section, built once when the Snakefile is parsed.

Defaults live only in ``workflow/schemas/config.schema.yaml``: validation fills every missing key
with its schema default (``validated``), then ``build_settings`` turns the complete config into
these dataclasses. Rules pass each job exactly the values it uses as ``params``
(docs/architecture.md); no job reads the config.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml

from .errors import ConfigError

# libyaml when PyYAML has it: 5-10x faster (the Snakefile reads the schema and every category)
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class SAEFamily:
    """One SAE family: a release + SAE id template, or a path template, with `{layer}`."""

    name: str
    release: str | None = None
    id_template: str | None = None
    path_template: str | None = None
    layers: tuple[int, ...] = ()  # this family's layers: its own `layers`, else the top-level list
    own_layers: bool = False  # whether the family lists its own `layers`
    hook_layer_offset: int = 0  # the SAE of layer L reads block L + offset (docs/configuration.md)

    def source(self, layer: int) -> dict:
        """Where the SAE of `layer` comes from: {'release', 'sae_id'} or {'path'}, plus
        'block' (the block its hook must be in) when the family has a hook_layer_offset."""
        if self.release is not None:
            out = {"release": self.release, "sae_id": self.id_template.format(layer=layer)}
        else:
            out = {"path": self.path_template.format(layer=layer)}
        if self.hook_layer_offset:
            out["block"] = int(layer) + self.hook_layer_offset
        return out

    def block(self, layer: int) -> int:
        """The transformer block the SAE of ``layer`` reads."""
        return int(layer) + self.hook_layer_offset


@dataclass(frozen=True)
class ModelSettings:
    """A TransformerLens name or a local model directory (exactly one is set)."""

    name: str | None = None
    path: str | None = None

    @property
    def spec(self) -> dict:
        """``{'name': ...}`` or ``{'path': ...}``: what the loading code takes."""
        return {"name": self.name} if self.name is not None else {"path": self.path}


@dataclass(frozen=True)
class DatasetSpec:
    """A category drawn from a dataset (``texts: {category: {dataset: ...}}``): loaded with the
    ``datasets`` library and materialised once into a Parquet category file
    (``extraction/datasets.py``; docs/configuration.md, "Categories from datasets")."""

    dataset: str  # hub id, local directory (save_to_disk or data files), or a builder name
    n: int
    name: str | None  # the dataset's configuration
    split: str
    field: str
    filter: tuple[tuple[str, object], ...]  # (column, value) pairs, all must match
    seed: int
    min_chars: int
    max_chars: int | None
    revision: str | None
    data_files: object  # str, list or {split: files} (load_dataset's data_files)
    streaming: bool | None  # None: stream hub datasets, read local ones whole
    buffer_size: int  # streamed datasets: the shuffle buffer

    def as_param(self) -> dict:
        """The spec as plain values (a rule param: a changed spec re-materialises)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["filter"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.filter}
        return out


@dataclass(frozen=True)
class ExtractionSettings:
    batch_size: int
    max_tokens: int | None
    long_texts: str
    chunk_size: int | None
    text_field: str
    text_split: str
    max_memory_gb: float  # window sizing only (extraction/memory.py): changes no result
    jobs: str  # which extraction rules run (workflow/rules/extract.smk); changes no shard


@dataclass(frozen=True)
class AnalysisSettings:
    aggregation: str
    threshold: float
    candidates: int
    include_bos: bool


@dataclass(frozen=True)
class DashboardSettings:
    top_k_features: int
    examples: int
    window_before: int
    window_after: int
    quantiles: int
    quantile_examples: int
    histogram_bins: int
    logit_top: int
    corpus: str | None
    corpus_text_field: str
    corpus_max_texts: int | None
    corpus_max_tokens: int

    def page_settings(self) -> dict:
        """What the dashboard pages use (and record in their tables' metadata)."""
        return {
            "top_k_features": self.top_k_features,
            "examples": self.examples,
            "window": {"before": self.window_before, "after": self.window_after},
            "quantiles": self.quantiles,
            "quantile_examples": self.quantile_examples,
            "histogram_bins": self.histogram_bins,
        }


@dataclass(frozen=True)
class MethodologySettings:
    enabled: bool
    model_variants: bool
    thresholds: tuple[float, ...]
    bootstrap_resamples: int
    seed: int
    ci: float
    max_dense_gb: float


@dataclass(frozen=True)
class ValidationSettings:
    enabled: bool
    families: tuple[str, ...] | None  # None: every family
    folds: int
    permutations: int
    seed: int
    random_feature_draws: int
    density_tolerance: float
    baselines: bool
    probe_k: tuple[int, ...]
    alpha: float
    min_auroc: float
    probe_margin: float
    test_texts: str | None
    max_dense_gb: float
    # validation.learning_curve (validation/learning_curve.py), flattened as learning_curve_<key>
    learning_curve_enabled: bool
    learning_curve_ladder: tuple[int, ...]
    learning_curve_draws: int
    learning_curve_permutations: int
    learning_curve_pass_share: float


@dataclass(frozen=True)
class ComparisonSettings:
    enabled: bool
    neighbours: int
    related_min_cosine: float  # related features: only neighbours above this decoder cosine
    split_min_correlation: float
    split_min_cosine: float


@dataclass(frozen=True)
class SurfaceSettings:
    """Surface or meaning (docs/surface.md)."""

    enabled: bool
    families: tuple[str, ...] | None  # None: every family
    trigger_mass: float
    max_triggers: int
    token_r2_min: float
    outside_min: float
    gated_max: float
    probe_texts: str | None  # a directory of probe texts (docs/surface.md); None: none
    topics: dict[str, str] | None  # category -> "topic/form" (docs/surface.md); None: none
    topk: int
    permutations: int
    fires_min: float
    auroc_min: float


@dataclass(frozen=True)
class ExportSettings:
    """Neuronpedia export (docs/dashboards.md)."""

    model_id: str | None
    sae_sets: dict[str, str]
    dataset: str
    features_per_batch: int


@dataclass(frozen=True)
class CausalSettings:
    enabled: bool
    modes: tuple[str, ...]
    control_draws: int
    steer_scales: tuple[float, ...]
    prompts: tuple[str, ...]
    steer_tokens: int
    top_tokens: int
    bootstrap_resamples: int
    seed: int
    ci: float
    min_effect: float  # nats: the smallest Δloss that makes a feature matter (the verdict)
    batch_size: int
    families: tuple[str, ...] | None  # None: every SAE family


@dataclass(frozen=True)
class CircuitsSettings:
    """Specialist circuits (docs/circuits.md)."""

    enabled: bool
    families: tuple[str, ...] | None  # None: every family's specialists are roots
    top_k: int
    verify: int
    max_texts: int | None  # None: every text of the category
    floor: float
    batch_size: int
    display_edges_per_node: int  # the pages: edges drawn per specialist and direction
    display_error_nodes: bool
    display_logit_tokens: int

    @property
    def display(self) -> dict:
        """The display settings (``circuits.display``) as the tables job's param."""
        return {
            "edges_per_node": self.display_edges_per_node,
            "error_nodes": self.display_error_nodes,
            "logit_tokens": self.display_logit_tokens,
        }


@dataclass(frozen=True)
class Settings:
    model: ModelSettings
    device: str
    dtype: str
    saes: dict[str, SAEFamily]
    layers: tuple[int, ...]
    # a directory of category files, or {category: category file (Path) | DatasetSpec}
    texts: Path | dict
    results_dir: str
    extraction: ExtractionSettings
    analysis: AnalysisSettings
    dashboards: DashboardSettings
    methodology: MethodologySettings
    validation: ValidationSettings
    causal: CausalSettings
    comparison: ComparisonSettings
    export: ExportSettings
    surface: SurfaceSettings
    circuits: CircuitsSettings
    demo: dict | None = None  # the `demo:` section as validated (demo rule only)

    @property
    def families(self) -> list[str]:
        return sorted(self.saes)

    def sae_sources(self, families=None, layers=None) -> dict[tuple[str, int], dict]:
        """(family, layer) -> SAE source, families sorted then layers ascending (the order of
        the extraction job's activation outputs); each family at its own layers (those in
        ``layers`` when given)."""
        wanted = None if layers is None else {int(layer) for layer in layers}
        return {
            (name, layer): self.saes[name].source(layer)
            for name in (self.families if families is None else families)
            for layer in self.saes[name].layers
            if wanted is None or layer in wanted
        }

    @property
    def family_layers(self) -> dict[str, tuple[int, ...]]:
        """Each family's layers (ascending)."""
        return {name: self.saes[name].layers for name in self.families}

    def extraction_groups(self) -> list[tuple[tuple[int, ...], tuple[str, ...], bool]]:
        """Families grouped by their layers, one extraction rule per group: (layers, families,
        whether the group holds the families at the top-level `layers`)."""
        groups: dict[tuple[int, ...], list[str]] = {}
        for name in self.families:
            groups.setdefault(self.saes[name].layers, []).append(name)
        return [
            (layers, tuple(names), any(not self.saes[n].own_layers for n in names))
            for layers, names in sorted(groups.items())
        ]


# -- validation (fills the schema's defaults) -------------------------------------------------


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path]
    return "".join(parts).lstrip(".") or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "oneOf":
        options = [" + ".join(s.get("required", [])) for s in error.validator_value]
        keys = sorted(error.instance) if isinstance(error.instance, dict) else error.instance
        return f"needs exactly one of: {' | '.join(options)} (found keys {keys})"
    if error.validator == "additionalProperties":
        return f"{error.message}; allowed keys: {sorted(error.schema.get('properties', {}))}"
    return error.message


def _with_defaults(validator_class):
    """A validator that sets every missing property that has a ``default`` before checking it
    (nested objects too: a section defaulting to {} then gets its own keys' defaults)."""
    check_properties = validator_class.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if isinstance(instance, dict):
            for name, sub in props.items():
                if "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from check_properties(validator, props, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": properties})


def validated(config: dict, schema_path: str | Path) -> dict:
    """A copy of ``config`` checked against the JSON schema, with every default filled in;
    every problem is reported with its key path."""
    schema = yaml.load(Path(schema_path).read_text(), Loader=YAML_LOADER)
    complete = copy.deepcopy(dict(config))
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(complete), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = "\n".join(f"  - {_key_path(e)}: {_describe(e)}" for e in errors)
        raise ConfigError(
            f"invalid configuration:\n{lines}\n"
            "Fix these keys: config/README.md describes each one (its type, default and "
            "meaning; the schema: workflow/schemas/config.schema.yaml)."
        )
    return complete


# -- building the dataclasses -------------------------------------------------------------------


def _family(name: str, spec: dict, default_layers: list[int]) -> SAEFamily:
    layers = list(spec.get("layers", default_layers))
    n_layers = len(layers)
    key = "id" if "id" in spec else "path"
    template = spec[key]
    placeholders = set(re.findall(r"{([^{}]*)}", template))
    if placeholders - {"layer"}:
        raise ConfigError(
            f"config: saes.{name}.{key} = {template!r} has placeholder(s) "
            f"{sorted(placeholders - {'layer'})}; only '{{layer}}' is allowed."
        )
    if n_layers > 1 and "layer" not in placeholders:
        where = f"saes.{name}.layers" if "layers" in spec else "layers"
        raise ConfigError(
            f"config: saes.{name}.{key} = {template!r} has no '{{layer}}' but {n_layers} layers "
            f"are configured ({where}: {layers}), so every layer would read the same SAE. "
            f'Write it as e.g. "blocks.{{layer}}.hook_resid_pre" or "saes/{name}/layer{{layer}}", '
            f"or give the family its one layer: saes.{name}.layers: [N]."
        )
    own = dict(
        layers=tuple(sorted(int(layer) for layer in layers)),
        own_layers="layers" in spec,
        hook_layer_offset=int(spec.get("hook_layer_offset", 0)),
    )
    if "release" in spec:
        return SAEFamily(name, release=spec["release"], id_template=spec["id"], **own)
    return SAEFamily(name, path_template=spec["path"], **own)


def build_settings(config: dict) -> Settings:
    """Settings of a validated config (``validated``: every key present), with the checks a
    schema cannot do."""
    layers = list(config["layers"])
    if len(set(layers)) != len(layers):
        raise ConfigError(f"config: layers {layers} has duplicates; list each layer once.")
    dash = dict(config["dashboards"])
    window = dash.pop("window")
    meth = dict(config["methodology"])
    analysis = dict(config["analysis"])
    saes = {name: _family(name, spec, layers) for name, spec in config["saes"].items()}
    return Settings(
        model=ModelSettings(**config["model"]),
        device=config["device"],
        dtype=config["dtype"],
        saes=saes,
        # the layers analysed: every family's layers together
        layers=tuple(sorted({layer for family in saes.values() for layer in family.layers})),
        texts=_texts(config["texts"]),
        results_dir=str(config["results_dir"]).rstrip("/"),
        extraction=ExtractionSettings(**config["extraction"]),
        analysis=AnalysisSettings(**{**analysis, "threshold": float(analysis["threshold"])}),
        dashboards=DashboardSettings(
            **dash, window_before=window["before"], window_after=window["after"]
        ),
        methodology=MethodologySettings(
            **{
                **meth,
                "thresholds": tuple(float(t) for t in meth["thresholds"]),
                "ci": float(meth["ci"]),
                "max_dense_gb": float(meth["max_dense_gb"]),
            }
        ),
        comparison=ComparisonSettings(
            **{
                **config["comparison"],
                "split_min_correlation": float(config["comparison"]["split_min_correlation"]),
                "split_min_cosine": float(config["comparison"]["split_min_cosine"]),
            }
        ),
        validation=_validation(config["validation"], saes),
        causal=_causal(config["causal"], saes),
        export=_export(config["export"], saes),
        surface=_surface(config["surface"], saes),
        circuits=_circuits(config["circuits"], saes),
        demo=config.get("demo"),
    )


def _texts(texts) -> Path | dict:
    """``texts:``: a directory (str), or {category: file path | dataset spec}."""
    if isinstance(texts, str):
        return Path(texts)
    out: dict = {}
    for category, source in texts.items():
        if isinstance(source, str):
            out[category] = Path(source)
            continue
        spec = dict(source)
        spec["filter"] = tuple(
            (column, tuple(value) if isinstance(value, list) else value)
            for column, value in sorted((spec.get("filter") or {}).items())
        )
        out[category] = DatasetSpec(**spec)
    return out


def _validation(section: dict, saes: dict) -> ValidationSettings:
    unknown = sorted(set(section["families"] or ()) - set(saes))
    if unknown:
        raise ConfigError(
            f"config: validation.families names {unknown}, which are not SAE families of this "
            f"config (saes: {sorted(saes)}). List some of those, or null for all of them."
        )
    floats = ("density_tolerance", "alpha", "min_auroc", "probe_margin", "max_dense_gb")
    return ValidationSettings(
        **{
            **{key: value for key, value in section.items() if key != "learning_curve"},
            **{key: float(section[key]) for key in floats},
            "probe_k": tuple(sorted(int(k) for k in section["probe_k"])),
            "families": None if section["families"] is None else tuple(section["families"]),
            **_learning_curve(section["learning_curve"]),
        }
    )


def _surface(section: dict, saes: dict) -> SurfaceSettings:
    unknown = sorted(set(section["families"] or ()) - set(saes))
    if unknown:
        raise ConfigError(
            f"config: surface.families names {unknown}, which are not SAE families of this "
            f"config (saes: {sorted(saes)}). List some of those, or null for all of them."
        )
    floats = ("trigger_mass", "token_r2_min", "outside_min", "gated_max", "fires_min", "auroc_min")
    return SurfaceSettings(
        **{
            **section,
            **{key: float(section[key]) for key in floats},
            "families": None if section["families"] is None else tuple(section["families"]),
        }
    )


def _circuits(section: dict, saes: dict) -> CircuitsSettings:
    unknown = sorted(set(section["families"] or ()) - set(saes))
    if unknown:
        raise ConfigError(
            f"config: circuits.families names {unknown}, which are not SAE families of this "
            f"config (saes: {sorted(saes)}). List some of those, or null for all of them."
        )
    section = dict(section)
    display = section.pop("display")
    return CircuitsSettings(
        **{
            **section,
            "families": None if section["families"] is None else tuple(sorted(section["families"])),
            "floor": float(section["floor"]),
        },
        **{f"display_{key}": value for key, value in display.items()},
    )


def _export(section: dict, saes: dict) -> ExportSettings:
    unknown = sorted(set(section["sae_sets"]) - set(saes))
    if unknown:
        raise ConfigError(
            f"config: export.sae_sets names {unknown}, which are not SAE families of this config "
            f"(saes: {sorted(saes)}). Key it by family names, or remove the entries."
        )
    return ExportSettings(**{**section, "sae_sets": dict(section["sae_sets"])})


def _learning_curve(section: dict) -> dict:
    """validation.learning_curve as the flat ``learning_curve_<key>`` fields."""
    return {
        "learning_curve_enabled": bool(section["enabled"]),
        "learning_curve_ladder": tuple(sorted(int(n) for n in section["ladder"])),
        "learning_curve_draws": int(section["draws"]),
        "learning_curve_permutations": int(section["permutations"]),
        "learning_curve_pass_share": float(section["pass_share"]),
    }


def _causal(section: dict, saes: dict) -> CausalSettings:
    families = section["families"]
    unknown = sorted(set(families or ()) - set(saes))
    if unknown:
        raise ConfigError(
            f"config: causal.families names {unknown}, which are not SAE families (saes: "
            f"{sorted(saes)}). List families of `saes:`, or null for every family."
        )
    return CausalSettings(
        **{
            **section,
            "families": None if families is None else tuple(sorted(set(families))),
            "modes": tuple(section["modes"]),
            "steer_scales": tuple(float(s) for s in section["steer_scales"]),
            "prompts": tuple(section["prompts"]),
            "ci": float(section["ci"]),
            "min_effect": float(section["min_effect"]),
        }
    )


def load_settings(config: dict, schema_path: str | Path) -> Settings:
    """Validate ``config`` (defaults filled from the schema) and build its settings."""
    return build_settings(validated(config, schema_path))


def schema_path() -> Path:
    """The workflow's JSON schema (a source checkout: src/ next to workflow/)."""
    return Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"
