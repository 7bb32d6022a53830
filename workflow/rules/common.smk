# Shared by every stage: the settings (built once, here) and the results layout.
# S: typed settings (sae_specialists.core.settings), defaults filled from the JSON schema.
# L: every results path (sae_specialists.core.layout): rules build inputs/outputs from it and
#    pass jobs the keys (family, layer, category) as params or wildcards.
# Each rule passes its job exactly the values the job uses as params (docs/architecture.md).
import sys

from sae_specialists.core.checksums import DigestCache, content_params, directory_files
from sae_specialists.core.layout import Layout
from sae_specialists.extraction.corpus import CorpusOptions
from sae_specialists.extraction.datasets import (
    category_chunks,
    category_files,
    dataset_specs,
)
from sae_specialists.extraction.models import model_input_files
from sae_specialists.extraction.saes import sae_input_files
from sae_specialists.extraction.texts import list_categories  # validation.smk: test set
from sae_specialists.preflight import CHECKED_FILES, built_by_workflow
from sae_specialists.startup import hub_warning, startup_checks
from snakemake.settings.types import ExecMode

# Schema validation with readable messages (filling every default), plus the checks a schema
# cannot express (SAE ids, layers of a local model, every text file, every configured input
# exists): all before any job starts. The config files and --config values are passed so that
# alias bombs are refused and --config strings read as the schema expects (preflight.py).
S = startup_checks(
    config,
    workflow.source_path("../schemas/config.schema.yaml"),
    config_files=workflow.overwrite_configfiles,
    overrides=workflow.config_settings.config,
    checked_files=CHECKED_FILES,  # inputs that passed (SAE weights, corpora): not read again
)
# the hub: said when the workflow is read (`-n` too), by the main process only; a real run that
# has a job loading a missing model or SAE stops before it (onstart, Snakefile)
HUB_WARNING = hub_warning(S) if workflow.exec_mode == ExecMode.DEFAULT else None
if HUB_WARNING:
    print(f"WARNING {HUB_WARNING}", file=sys.stderr)
# category -> the file its extraction jobs read: a category file, or a dataset category's
# materialised Parquet file, built by materialise_dataset in datasets.smk (DATASETS holds
# their specs)
CATEGORIES = category_files(S)
DATASETS = dataset_specs(S)
# Extraction jobs run per (category, chunk of extraction.chunk_size texts). The number of chunks
# is counted here, when the DAG is built (Parquet: metadata; JSONL/.txt: one line scan; YAML:
# parsed; a dataset category: its n), so every job is known up front and `snakemake -n` lists
# them all (no checkpoint).
N_CHUNKS = category_chunks(
    S, CorpusOptions(S.extraction.text_field, S.extraction.text_split)
)
L = Layout.of(S.results_dir, S.saes, S.layers, CATEGORIES, N_CHUNKS, S.family_layers)
FAMILIES = L.families
LAYERS = L.layers
GPU = 1 if S.device == "cuda" else 0
DATASET_FILES = {str(CATEGORIES[c]) for c in DATASETS}


wildcard_constraints:
    category="[A-Za-z0-9_-]+",
    family="[A-Za-z0-9_-]+",
    layer=r"\d+",
    chunk=r"\d{5}",


def unchecked(value):
    """A param Snakemake does not compare for reruns, for values that change no result (batch
    size, device): a param given as a function of `threads` is a derived param, which
    Snakemake's params rerun trigger leaves out."""
    return lambda wildcards, threads: value


def model_and_sae_files(families, layers):
    """Local model/SAE files a rule depends on (none for hub models), so editing them reruns it."""
    files = model_input_files(S.model.spec)
    for source in S.sae_sources(families, [int(l) for l in layers]).values():
        files += sae_input_files(source)
    return files


# Content digests of local inputs, cached by path + stat (core/checksums.py): a param of every
# rule that reads a local model, SAE or text file, so replacing one reruns its jobs even when
# the new file is older than the outputs (cp -a, a restored backup).
DIGESTS = DigestCache(".snakemake/sae_specialists/content_digests.json")


def local_content(families=(), layers=None, files=(), model=True):
    """{path: digest} of the local model directory (`model`), the local SAE directories of
    (families, layers) and `files`. Inputs this workflow builds itself (the demo assets) are
    tracked by Snakemake already."""
    # a materialised dataset category is built by this workflow (tracked by Snakemake)
    paths = [str(f) for f in files if str(f) not in DATASET_FILES]
    if model and S.model.path is not None:
        paths += directory_files(S.model.path)
    for source in S.sae_sources(families, layers).values() if families else []:
        if "path" in source:
            paths += directory_files(source["path"])
    return content_params(
        [p for p in paths if not built_by_workflow(p, S.demo)], DIGESTS
    )


def sae_sources(families=None, layers=None):
    """(family, layer) -> SAE source: the params of a job that loads SAEs."""
    return S.sae_sources(families, layers)


# Healing (docs/troubleshooting.md): Snakemake rebuilds a missing file only when a job it has
# to run needs it, so a deleted intermediate (a shard, a per-text table, logit effects) whose
# consumers are up to date would stay missing ("Nothing to be done") while pages link it. Each
# target rule therefore lists the intermediate files its outputs are made from, next to them.
def analysis_needs():
    """Token and activation shards, the text list and the per-text tables: what every analysis
    output is made of (not the pooled residuals: only validation baselines read those).
    """
    return [*L.tokens(), *L.all_activations(), L.texts, *L.all_per_text()]


def dashboard_needs():
    files = analysis_needs() + [L.logits(f, layer) for f, layer in L.sae_layers()]
    if S.dashboards.corpus:
        files += [L.corpus_tokens] + [
            L.corpus_activations(f, l) for f, l in L.sae_layers()
        ]
    return files


def methodology_needs():
    variants = L.ablation_inputs(S.methodology.model_variants)
    return analysis_needs() + [
        p for key in ("resid", "pad", "pad_texts") for p in variants.get(key, [])
    ]


def validation_needs(wildcards=None):
    """The intermediate files of the validation outputs (V, BASELINE_LAYERS, LT:
    validation.smk; an input function, as LT is defined after the target rule)."""
    parts = [
        ("heldout", "folds"),
        ("heldout", "cells"),
        ("null", "null"),
        ("null", "cells"),
    ]
    files = analysis_needs() + [L.validation_part(part, name) for part, name in parts]
    for family, layer in BASELINE_LAYERS:
        files += [
            *L.pooled(family, layer),
            L.validation_layer("baselines", family, layer, "baselines"),
        ]
    # LT: the test set's layout, V_LAYERS: the validated layers (validation.smk)
    if V_TEST:
        files += [*LT.tokens(), LT.texts]
        for family, layer in V_LAYERS:
            files += [*LT.activations(family, layer), LT.per_text(family, layer)]
    return files


def causal_needs():
    """The intermediate files of the causal outputs (CAUSAL_LAYER_TABLES: causal.smk)."""
    layers = [
        L.causal_layer(f, l)[n] for f, l in L.sae_layers() for n in CAUSAL_LAYER_TABLES
    ]
    return analysis_needs() + [L.causal_cells, *layers]


def surface_needs():
    """The intermediate files of the surface outputs (SURFACE_LAYERS: surface.smk)."""
    files = analysis_needs() + [
        L.surface_layer(f, l, n)
        for f, l in SURFACE_LAYERS
        for n in ("specialists", "tokens")
    ]
    # the topic x form design reads the pooled residuals
    if S.surface.topics is not None:
        files += [p for f, l in SURFACE_LAYERS for p in L.pooled(f, l)]
    return files


def comparison_needs():
    """The intermediate files of the comparison outputs."""
    return analysis_needs() + [L.comparison_table("feature_directions")]
