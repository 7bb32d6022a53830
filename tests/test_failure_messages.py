"""A failed run ends with the project's message, once, as its last lines (issue 16, item 5), and
long jobs show progress with rate and ETA on the console (item 8). Real Snakemake runs."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import yaml
from conftest import REPO, SNAKEMAKE, write_texts

from sae_specialists.core import jobs


def last_lines(proc: subprocess.CompletedProcess, n: int) -> list[str]:
    return (proc.stderr.rstrip("\n")).splitlines()[-n:]


def test_startup_error_names_the_files_read_and_has_no_traceback(tmp_path):
    texts = write_texts(tmp_path / "texts", {"code": ["def f(): pass"]})
    config = {
        "model": {"name": "gpt2"},
        "texts": str(texts),
        "results_dir": str(tmp_path / "r"),
        "saes": {"res": {"release": "gpt2-small-res-jb", "id": "blocks.{layer}.hook_resid_pre"}},
        "layers": [6],
        "analysis": {"threshold": "abc"},
    }
    other = tmp_path / "my-study.yaml"
    other.write_text(yaml.safe_dump(config))
    base = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path)]
    proc = subprocess.run(
        base + ["-n", "--configfile", str(other)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr
    assert last_lines(proc, 4) == [
        f"sae-specialists: cannot start (configuration: {other})",
        "invalid configuration:",
        "  - analysis.threshold: 'abc' is not of type 'number'",
        "Fix these keys: config/README.md describes each one (its type, default and meaning; "
        "the schema: workflow/schemas/config.schema.yaml).",
    ]
    assert out.count("is not of type") == 1
    assert 'File "' not in out and "Traceback" not in out and "--configfile or --config" not in out
    # a --config value is named too
    config["analysis"]["threshold"] = 5.0
    other.write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        base + ["-n", "--configfile", str(other), "--config", "layers=[99]"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    first = [line for line in proc.stderr.splitlines() if line.startswith("sae-specialists:")]
    assert first == [
        f"sae-specialists: cannot start (configuration: {other}; --config layers=[99])"
    ]
    assert 'File "' not in proc.stdout + proc.stderr


def test_unreachable_hub_is_reported_once_at_the_end(tmp_path):
    """The extraction jobs fail in parallel with the hub unreachable: the message is printed
    once, after Snakemake's own lines, naming every failed job and its log. The HF cache holds
    a snapshot of the model's and the SAE's repositories (so the startup check, which stops a
    run whose model is missing from the cache before any job, lets the jobs start) without the
    files the loaders need: each job fails on its own."""
    texts = write_texts(
        tmp_path / "texts", {"code": ["def f(): pass", "import os"], "chat": ["hi there", "ok"]}
    )
    config = {
        "model": {"name": "gpt2"},
        "texts": str(texts),
        "results_dir": str(tmp_path / "results"),
        "saes": {"res": {"release": "gpt2-small-res-jb", "id": "blocks.{layer}.hook_resid_pre"}},
        "layers": [6],
        "methodology": {"enabled": False},
    }
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HOME=str(tmp_path / "empty-hf-home"),
    )
    hub = tmp_path / "empty-hf-home" / "hub"
    for repo, folder in (
        ("gpt2", ""),
        ("jbloom--GPT2-Small-SAEs-Reformatted", "blocks.6.hook_resid_pre"),
    ):
        snapshot = hub / f"models--{repo}" / "snapshots" / "0123abc" / folder
        snapshot.mkdir(parents=True)
        (snapshot / "README.md").write_text("an incomplete download\n")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [
        SNAKEMAKE,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--configfile",
        str(tmp_path / "config.yaml"),
        "--cores",
        "4",
        "--keep-going",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr
    message = "could not load 'gpt2' (not in the local Hugging Face cache)"
    assert out.count(message) == 1, out[-3000:]
    tail = last_lines(proc, 3)
    assert tail[0] == "sae-specialists: the run stopped."
    assert message in tail[2]
    n_jobs = int(tail[1].split(" ", 1)[0])  # every extraction job (--keep-going): one block
    assert n_jobs >= 2 and tail[1].count(".log") == n_jobs, tail[1]
    assert tail[1].split(" ", 1)[1].startswith("jobs failed (extract_")
    assert not list((tmp_path / ".snakemake" / "sae_specialists" / "failures").glob("*/*"))


def test_failure_report_groups_identical_messages(tmp_path):
    for i, (msg, job) in enumerate([("A bad", "x c=1"), ("A bad", "x c=2"), ("B worse", "y")]):
        (tmp_path / f"{i}.json").write_text(
            json.dumps({"message": msg, "job": job, "log": f"logs/{i}.log"})
        )
    report = jobs.failure_report(tmp_path).splitlines()
    assert report == [
        "",
        "sae-specialists: the run stopped.",
        "2 jobs failed (x c=1; x c=2); logs: logs/0.log, logs/1.log:",
        "A bad",
        "1 job failed (y); log: logs/2.log:",
        "B worse",
    ]
    assert jobs.failure_report(tmp_path / "none") is None


SNAKEFILE = """
rule all:
    input: expand("out/{i}.txt", i=[1, 2])

rule count:
    output: "out/{i}.txt"
    log: "logs/{i}.log"
    params: n=40
    script: "count.py"
"""

SCRIPT = """
import time
from sae_specialists.core.jobs import progress, run

def count(smk):
    for _ in progress(range(smk.params.n), desc="resamples", unit="resamples"):
        time.sleep(0.05)
    open(smk.output[0], "w").write("done")

run(count, snakemake)
"""


def test_progress_reaches_the_console_with_rate_and_eta(tmp_path):
    (tmp_path / "Snakefile").write_text(textwrap.dedent(SNAKEFILE))
    (tmp_path / "count.py").write_text(textwrap.dedent(SCRIPT))
    env = dict(os.environ, SAE_SPECIALISTS_PROGRESS_S="0.5")
    proc = subprocess.run(
        [
            SNAKEMAKE,
            "--cores",
            "4",
            "--directory",
            str(tmp_path),
            "-s",
            str(tmp_path / "Snakefile"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "resamples:" in line]
    for job in ("count i=1", "count i=2"):
        mine = [line for line in lines if f" {job} resamples:" in line]
        assert len(mine) >= 2, proc.stderr  # during the job, not only at its end
        assert all("resamples/s" in line and "ETA" in line for line in mine)
        assert mine[-1].split(f"{job} resamples: ")[1].startswith("40/40 resamples (100%)")
    # whole lines: no carriage returns, no bar drawn over another job's
    assert "\r" not in proc.stderr
    log = (tmp_path / "logs" / "1.log").read_text()
    assert "40/40 resamples (100%)" in log


def test_short_loops_print_nothing(caplog):
    import logging

    caplog.set_level(logging.INFO, logger="sae_specialists")
    for _ in jobs.progress(range(3), desc="quick", unit="items", every_s=5):
        pass
    assert not [r for r in caplog.records if "quick" in r.getMessage()]
