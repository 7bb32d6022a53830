# Shared helpers: configuration checks, categories, and the paths of the data contract.
from pathlib import Path

from sae_specialists.checks import startup_checks
from sae_specialists.texts import list_categories

# Schema validation with readable messages, plus the checks a schema cannot express (SAE ids,
# layers of a local model, every text file) — all before any job starts.
SETTINGS = startup_checks(config, workflow.source_path("../schemas/config.schema.yaml"))
R = SETTINGS.results_dir
CATEGORIES = list_categories(SETTINGS.texts)
FAMILIES = sorted(SETTINGS.saes)
LAYERS = SETTINGS.layers


wildcard_constraints:
    category="[A-Za-z0-9_-]+",
    family="[A-Za-z0-9_-]+",
    layer=r"\d+",


def text_file(category):
    return str(CATEGORIES[category])


def tokens_shard(category):
    return f"{R}/tokens/category={category}/tokens.parquet"


def activation_shard(family, layer, category):
    return f"{R}/activations/sae={family}/layer={layer}/category={category}/activations.parquet"


def category_activation_shards(category):
    return [activation_shard(f, l, category) for f in FAMILIES for l in LAYERS]


def extraction_outputs():
    return [tokens_shard(c) for c in CATEGORIES] + [
        shard for c in CATEGORIES for shard in category_activation_shards(c)
    ]
