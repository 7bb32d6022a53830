# Shared helpers: configuration checks, categories, and the paths of the data contract.
from pathlib import Path

from sae_specialists.core.layout import AnalysisPaths, flatten
from sae_specialists.startup import startup_checks
from sae_specialists.extraction.corpus import CorpusOptions, chunk_counts
from sae_specialists.dashboards.settings import dashboard_settings
from sae_specialists.methodology.settings import methodology_settings
from sae_specialists.extraction.models import model_input_files
from sae_specialists.extraction.saes import sae_input_files
from sae_specialists.extraction.texts import list_categories

# Schema validation with readable messages, plus the checks a schema cannot express (SAE ids,
# layers of a local model, every text file) — all before any job starts.
SETTINGS = startup_checks(config, workflow.source_path("../schemas/config.schema.yaml"))
R = SETTINGS.results_dir
CATEGORIES = list_categories(SETTINGS.texts)
FAMILIES = sorted(SETTINGS.saes)
LAYERS = SETTINGS.layers
AP = AnalysisPaths.of(R, FAMILIES, LAYERS, CATEGORIES)  # paths of the analysis outputs
# Extraction jobs run per (category, chunk of extraction.chunk_size texts). The number of chunks
# is counted here, when the DAG is built (Parquet: metadata; JSONL/.txt: one line scan; YAML:
# parsed), so every job is known up front and `snakemake -n` lists them all (no checkpoint).
CHUNK_SIZE = SETTINGS.extraction["chunk_size"]
N_CHUNKS = chunk_counts(CATEGORIES, CHUNK_SIZE, CorpusOptions.from_extraction(SETTINGS.extraction))


wildcard_constraints:
    category="[A-Za-z0-9_-]+",
    family="[A-Za-z0-9_-]+",
    layer=r"\d+",
    chunk=r"\d{5}",


def text_file(category):
    return str(CATEGORIES[category])


def chunks(category):
    """Chunk labels of a category: 00000, 00001, ... (zero-padded: path order = chunk order)."""
    return [f"{k:05d}" for k in range(N_CHUNKS[category])]


def tokens_chunk_shard(category, chunk):
    return f"{R}/tokens/category={category}/chunk={chunk}/tokens.parquet"


def activation_chunk_shard(family, layer, category, chunk):
    return (
        f"{R}/activations/sae={family}/layer={layer}/category={category}/chunk={chunk}/"
        "activations.parquet"
    )


def tokens_shard(category):
    """Every tokens shard of a category: a list, one per chunk, in text order."""
    return [tokens_chunk_shard(category, k) for k in chunks(category)]


def activation_shard(family, layer, category):
    """Every activation shard of (family, layer, category): a list, one per chunk."""
    return [activation_chunk_shard(family, layer, category, k) for k in chunks(category)]


def category_activation_shards(category):
    return [p for f in FAMILIES for l in LAYERS for p in activation_shard(f, l, category)]


def model_and_sae_files(families, layers):
    """Local model/SAE files a rule depends on (none for hub models), so editing them reruns it."""
    files = model_input_files(SETTINGS.model)
    for name in families:
        for layer in layers:
            files += sae_input_files(SETTINGS.saes[name].source(int(layer)))
    return files


def extraction_inputs(wildcards):
    return [text_file(wildcards.category)] + model_and_sae_files(FAMILIES, LAYERS)


def extraction_outputs():
    return [p for c in CATEGORIES for p in tokens_shard(c)] + [
        shard for c in CATEGORIES for shard in category_activation_shards(c)
    ]


# --- Feature dashboards stage (rules in dashboards.smk) ------------------------------

_DB = dashboard_settings(config)
LOGITS_DIR = f"{R}/logits"
DASHBOARDS_DIR = f"{R}/dashboards"
CORPUS_DIR = f"{R}/corpus"


def logits_file(family, layer):
    return f"{LOGITS_DIR}/sae={family}/layer={layer}.parquet"


def dashboard_dir(family, layer):
    return f"{DASHBOARDS_DIR}/sae={family}/layer={layer}"


def corpus_tokens():
    return f"{CORPUS_DIR}/tokens.parquet"


def corpus_activations(family, layer):
    return f"{CORPUS_DIR}/activations/sae={family}/layer={layer}.parquet"


def dashboard_outputs():
    """Every final output of the dashboards stage (used by `rule all` and `rule dashboards`)."""
    return [f"{DASHBOARDS_DIR}/index.html"] + [
        dashboard_dir(f, l) for f in FAMILIES for l in LAYERS
    ]


def _dashboard_layer_inputs(w):
    files = dict(
        tokens=flatten(tokens_shard(c) for c in CATEGORIES),
        activations=flatten(activation_shard(w.family, w.layer, c) for c in CATEGORIES),
        per_text=AP.per_text(w.family, w.layer),
        texts=AP.texts,
        specialists=AP.table("specialists"),
        strongest=AP.table("strongest"),
        frequent=AP.table("frequent"),
        logits=logits_file(w.family, w.layer),
    )
    if _DB["corpus"]:
        files["corpus_tokens"] = corpus_tokens()
        files["corpus_activations"] = corpus_activations(w.family, w.layer)
    return files


# --- Methodology stage (rules in methodology.smk) -----------------------------------

_M = methodology_settings(config)
_MA = SETTINGS.analysis
MR = f"{R}/methodology"
MCH = f"{MR}/charts"
_BOOT = dict(
    threshold=_MA["threshold"],
    candidates=_MA["candidates"],
    resamples=_M["bootstrap_resamples"],
    seed=_M["seed"],
    ci=_M["ci"],
)


def _mvariant(category, name):
    return f"{MR}/variants/category={category}/{name}.parquet"


def _mtable(name, ext="parquet"):
    return f"{MR}/{name}.{ext}"


def _mchart(name, ext):
    return f"{MCH}/{name}.{ext}"


def _stability_chart(family, ext):
    return f"{R}/charts/specialist_stability_sae={family}.{ext}"


def _methodology_targets():
    return [
        _mtable("ablation"),
        _mtable("ablation_summary"),
        _mtable("threshold_sweep"),
        _mtable("auroc"),
        _mtable("all_features"),
        _mtable("missed_by_topk"),
        _mtable("bootstrap"),
        f"{R}/tables/specialists_stability.parquet",
        f"{MR}/summary.md",
        *[_mchart(n, ext) for n in ("ablation", "threshold_sweep", "auroc", "topk_vs_all")
          for ext in ("html", "png")],
        *[_stability_chart(f, ext) for f in FAMILIES for ext in ("html", "png")],
    ]


def methodology_outputs():
    """Final methodology outputs (in `rule all` only when methodology.enabled is true)."""
    return _methodology_targets() if _M["enabled"] else []


def _pair(name):
    return {name: _mtable(name), f"{name}_csv": _mtable(name, "csv")}


def _ablation_inputs(wildcards):
    files = dict(
        tokens=flatten(tokens_shard(c) for c in CATEGORIES),
        activations=flatten(activation_shard(f, l, c) for f in FAMILIES for l in LAYERS for c in CATEGORIES),
    )
    if _M["model_variants"]:
        files["resid"] = [_mvariant(c, "resid") for c in CATEGORIES]
        files["pad"] = [_mvariant(c, "pad") for c in CATEGORIES]
        files["pad_texts"] = [_mvariant(c, "texts") for c in CATEGORIES]
    return files
