# sae-specialists: which SAE features specialise in which kinds of text, at which layers.
# Stages (one file each under workflow/rules/): demo assets -> extraction -> analysis (+ report)
# -> dashboards, methodology. docs/architecture.md: the module map and how to add a stage.
from snakemake.utils import min_version

from sae_specialists.cli import check_swallowed_target
from sae_specialists.core.errors import exit_on_user_error
from sae_specialists.core.jobs import (
    discard_failure_reports,
    print_failure_report_at_exit,
    start_failure_reports,
)
from sae_specialists.preflight import check_config_files
from sae_specialists.startup import check_hub_for_jobs, single_threaded_polars

single_threaded_polars()

min_version("9.0")


# Jobs leave user errors (bad input, unreachable hub) here; onerror prints each once, last.
FAILURES = start_failure_reports()

# A user error while reading the configuration and the inputs ends the run with one message
# naming the configuration actually read (no traceback lines).
with exit_on_user_error(lambda: workflow.configfiles, workflow.config_settings.config):

    # `snakemake --configfile FILE analysis` reads the target as a config file (cli.py)
    check_swallowed_target(config)

    # A --configfile given on the command line *replaces* the default config (merging the two
    # would mix `model: {name: ...}` with `model: {path: ...}`); --config KEY=VALUE overrides.
    if not workflow.overwrite_configfiles:
        # refuse a YAML alias bomb before Snakemake's merge would expand it (preflight.py)
        check_config_files(["config/config.yaml"])

        configfile: "config/config.yaml"

    include: "workflow/rules/common.smk"
    include: "workflow/rules/demo.smk"
    include: "workflow/rules/datasets.smk"
    include: "workflow/rules/extract.smk"
    include: "workflow/rules/analysis.smk"
    include: "workflow/rules/dashboards.smk"
    include: "workflow/rules/methodology.smk"
    include: "workflow/rules/validation.smk"
    include: "workflow/rules/causal.smk"
    include: "workflow/rules/circuits.smk"
    include: "workflow/rules/comparison.smk"
    include: "workflow/rules/surface.smk"
    include: "workflow/rules/export.smk"


rule all:
    default_target: True
    input:
        L.index,  # the map of the run: report.smk, built after everything else
        L.extraction_outputs(),
        [L.dataset_provenance] if DATASETS else [],  # datasets.smk
        # the intermediate files too, so that a deleted one is rebuilt (common.smk: healing)
        dashboard_needs(),
        methodology_needs() if S.methodology.enabled else [],
        validation_needs() if S.validation.enabled else [],
        causal_needs() if S.causal.enabled else [],
        comparison_needs() if S.comparison.enabled else [],
        surface_needs() if S.surface.enabled else [],
        L.analysis_outputs(),
        L.dashboard_outputs(),
        L.methodology_outputs() if S.methodology.enabled else [],
        L.validation_outputs(
            S.validation.baselines,
            S.validation.test_texts is not None,
            S.validation.families,
        )
        if S.validation.enabled
        else [],
        (
            L.learning_curve_outputs(V_FAMILIES)
            if S.validation.enabled and S.validation.learning_curve_enabled
            else []
        ),
        L.causal_outputs() if S.causal.enabled else [],
        L.circuits_layer_files(CIRCUITS_FAMILIES) if S.circuits.enabled else [],
        L.circuits_outputs() if S.circuits.enabled else [],
        L.comparison_outputs() if S.comparison.enabled else [],
        L.surface_outputs(S.surface.topics is not None) if S.surface.enabled else [],


include: "workflow/rules/report.smk"


onstart:
    # before the first job: with the hub unreachable, the models and SAEs the jobs to run load
    # must be in the HF cache (startup.check_hub_for_jobs); else one message, within seconds
    with exit_on_user_error(
        lambda: workflow.configfiles, workflow.config_settings.config
    ):
        check_hub_for_jobs(
            dict(job.params.items()) for job in workflow.dag.needrun_jobs()
        )


onsuccess:
    discard_failure_reports(FAILURES)


onerror:
    # after Snakemake's own lines: the project's message(s), once each (core/jobs.py)
    print_failure_report_at_exit(FAILURES)
