"""Command-line mistakes end with the project's message (issue 26 item 5): a target swallowed
by ``--configfile``, a layer the offline demo does not build (before its assets exist), and
config key errors pointing to the file that holds the per-key table. Real Snakemake starts
(dry runs: no job runs)."""

from __future__ import annotations

import subprocess

import yaml
from conftest import REPO, SNAKEMAKE

from sae_specialists.cli import GUARDED_TARGETS, guard_text


def test_every_guard_file_is_in_place_and_every_target_rule_is_guarded():
    for target in GUARDED_TARGETS:
        assert (REPO / target).read_text(encoding="utf-8") == guard_text(target)
    # the stage targets the README and docs name
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    stages = ("analysis", "dashboards", "methodology", "validation", "causal", "circuits")
    for target in (*stages, "surface", "comparison", "export"):
        assert f"`{target}`" in readme and target in GUARDED_TARGETS


def test_swallowed_target_names_the_likely_cause():
    proc = subprocess.run(
        [SNAKEMAKE, "-n", "--configfile", "config/demo.yaml", "analysis"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "`analysis` was read as a configuration file, not as the target" in out
    assert "snakemake --cores 4 analysis --configfile config/demo.yaml" in out
    assert "Traceback" not in out and "FileNotFoundError" not in out


def test_unknown_demo_layer_before_the_assets_exist(tmp_path):
    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text(encoding="utf-8"))
    config["layers"] = [0, 9]
    config["texts"] = str(REPO / config["texts"])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [SNAKEMAKE, "-n", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path)]
        + ["--configfile", str(cfg)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert not (tmp_path / "results" / "demo" / "assets" / "model").exists()
    assert "at layer 9 is 'results/demo/assets/saes/" in out
    assert "the offline demo does not build (its model has 4 layers, 0 to 3" in out
    assert "MissingInputException" not in out and "Traceback" not in out
