# Offline demo assets: a tiny model and SAEs with planted specialists, built from a fixed seed.
# Only active when the config has a `demo:` section (config/demo.yaml).
from sae_specialists.demo import N_LAYERS


if SETTINGS.demo:

    DEMO_DIR = SETTINGS.demo["dir"]

    rule build_demo_assets:
        output:
            model=multiext(f"{DEMO_DIR}/model/", "config.json", "model.safetensors"),
            saes=expand(
                f"{DEMO_DIR}/saes/res/layer{{layer}}/{{file}}",
                layer=range(N_LAYERS),
                file=["cfg.json", "sae_weights.safetensors"],
            ),
            plan=f"{DEMO_DIR}/planted.json",
        params:
            seed=SETTINGS.demo.get("seed", 0),
            out_dir=lambda w, output: os.path.dirname(output.plan),
        log:
            f"{R}/logs/build_demo_assets.log",
        resources:
            mem_mb=2000,
            runtime=10,
        conda:
            "../envs/sae_specialists.yaml"
        script:
            "../../scripts/build_demo.py"
