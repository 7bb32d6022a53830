# sae-specialists: which SAE features specialise in which kinds of text, at which layers.
# Stages (one file each under workflow/rules/): demo assets -> extraction -> analysis.
from snakemake.utils import min_version

from sae_specialists.runtime import (
    cancel_rate_limit_timers,
    exit_without_interpreter_teardown,
    single_threaded_polars,
)

single_threaded_polars()

min_version("9.0")


# A --configfile given on the command line *replaces* the default config (merging the two would
# mix e.g. `model: {name: ...}` with `model: {path: ...}`); --config KEY=VALUE still overrides.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/dashboards.smk"
include: "workflow/rules/methodology.smk"


rule all:
    input:
        extraction_outputs(),
        analysis_outputs(),
        dashboard_outputs(),
        methodology_outputs(),
    default_target: True


# After the last job: let the process exit now instead of up to 1 s later, and without the
# interpreter's ~0.45 s teardown (runtime.py).
onsuccess:
    cancel_rate_limit_timers()
    exit_without_interpreter_teardown()


onerror:
    cancel_rate_limit_timers()
