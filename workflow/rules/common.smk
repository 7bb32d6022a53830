# Shared helpers: configuration checks, categories, and the paths of the data contract.
from pathlib import Path

from sae_specialists.checks import startup_checks
from sae_specialists.corpus import CorpusOptions, chunk_counts
from sae_specialists.texts import list_categories

# Schema validation with readable messages, plus the checks a schema cannot express (SAE ids,
# layers of a local model, every text file) — all before any job starts.
SETTINGS = startup_checks(config, workflow.source_path("../schemas/config.schema.yaml"))
R = SETTINGS.results_dir
CATEGORIES = list_categories(SETTINGS.texts)
FAMILIES = sorted(SETTINGS.saes)
LAYERS = SETTINGS.layers
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


def extraction_outputs():
    return [p for c in CATEGORIES for p in tokens_shard(c)] + [
        shard for c in CATEGORIES for shard in category_activation_shards(c)
    ]
