# The map of the run: results_dir/index.html links everything the run produced, grouped by
# stage (report/overview.py). Built last: it depends on every other output of `rule all`, so a
# new stage's outputs appear in it as soon as the stage is part of `rule all`.
import os


rule report_index:
    """index.html: every table, chart and page of the run, by stage, each stage with a short
    "read this first" line."""
    input:
        lambda w: [f for f in rules.all.input if f != L.index],
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
    script:
        "../../scripts/report_index.py"
