# Offline demo assets: a tiny model and SAE families with planted structure, built from a fixed
# seed (sae_specialists/demo/). Only active when the config has a `demo:` section
# (config/demo.yaml). The assets never depend on the texts.
from sae_specialists.demo.build import asset_files, check_demo_sources

if S.demo:

    DEMO_DIR = S.demo["dir"]
    # a layer or family the demo does not build: the project's message, not a missing input
    check_demo_sources(S.sae_sources(), DEMO_DIR)

    rule build_demo_assets:
        output:
            asset_files(DEMO_DIR),
        log:
            L.log("demo", "build_demo_assets"),
        conda:
            "../envs/sae_specialists.yaml"
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            seed=S.demo["seed"],  # the schema's default (0) is filled in at start
            out_dir=lambda wildcards: DEMO_DIR,  # a function: not a hardcoded output prefix (lint)
        script:
            "../../scripts/build_demo.py"
