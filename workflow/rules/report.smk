# The map of the run: results_dir/index.html, the findings board of every enabled verdict stage
# (report/findings.py) above the links to everything the run produced, grouped by stage
# (report/overview.py). Built last: it depends on every other output of `rule all`, so a new
# stage's outputs appear in it as soon as the stage is part of `rule all`. Files another
# configuration left in the same results_dir are listed apart ("not from this configuration");
# `snakemake clean_foreign` deletes them.
import os

from sae_specialists.report.findings import headline_files, sources, verdict_tables
from sae_specialists.report.overview import run_keys_of

# what this configuration produces: index.html lists other files apart (report/overview.py)
RUN_KEYS = run_keys_of(S, L)


rule report_index:
    """index.html: the findings board, then every table, chart and page of the run, by stage,
    each stage with a short "read this first" line."""
    input:
        lambda w: [f for f in rules.all.input if f != L.index],
        specialists=L.table("specialists"),
        # every enabled stage's verdict table (report/findings.py: the registry)
        verdicts=list(verdict_tables(S, L).values()),
        # their headlines (e.g. the surface stage's depth sentence), under the board
        headlines=list(headline_files(S, L).values()),
    output:
        L.index,
    log:
        L.log("report", "index"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        results_dir=lambda w, output: os.path.dirname(output[0]),  # index.html's directory
        # the demo's model and SAE files when they live under results_dir
        exclude=[S.demo["dir"]] if S.demo else [],
        verdict_stages=list(verdict_tables(S, L)),  # in the order of `verdicts`
        headline_stages=list(headline_files(S, L)),  # in the order of `headlines`
        # each headline's stage summary, linked
        headline_summaries={
            s.stage: s.summary(L) for s in sources(S) if s.summary is not None
        },
        dashboard_dirs={f"{f}/{l}": L.dashboard_dir(f, l) for f, l in L.sae_layers()},
        run_keys=RUN_KEYS,
    script:
        "../../scripts/report_index.py"


rule clean_foreign:
    """Delete the files another configuration left in results_dir: those index.html lists as
    "not from this configuration" (docs/troubleshooting.md). Run with the configuration whose
    results to keep: `snakemake --cores 1 clean_foreign [--configfile ...]`."""
    log:
        L.log("report", "clean_foreign"),
    conda:
        "../envs/sae_specialists.yaml"
    params:
        results_dir=S.results_dir,
        exclude=[S.demo["dir"]] if S.demo else [],
        run_keys=RUN_KEYS,
    script:
        "../../scripts/report_clean_foreign.py"


# Model jobs last among the ready ones: after a threshold change, the default target updates
# every model-free output (tables, charts, pages, model-free verdicts) before it reruns the
# model jobs whose inputs changed (a causal layer whose specialist set changed). Every rule that
# loads the model declares the `gpu` resource (docs/architecture.md); it runs at priority -1.
for _rule in workflow.rules:
    if "gpu" in _rule.resources and _rule.priority == 0:
        _rule.priority = -1
