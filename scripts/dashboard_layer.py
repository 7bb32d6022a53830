"""Rule dashboards_layer: one SAE family and layer -> its feature dashboards (no model)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))  # noqa: F821
from sae_specialists.core.jobs import rule_logging  # noqa: E402
from sae_specialists.dashboards import entry  # noqa: E402

with rule_logging(snakemake):  # noqa: F821
    entry.layer(snakemake)  # noqa: F821
