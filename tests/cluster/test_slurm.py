"""Cluster submission through profiles/slurm, proven on a real SLURM.

Needs a SLURM whose controller answers (`tests/cluster/setup_slurm.sh` sets up a
single-node one on this machine) and snakemake-executor-plugin-slurm (the `cluster`
extra). Without them the tests skip, except in CI (CI=true), where they fail.

Evidence that a job went through sbatch, for every job that is not a local rule:
snakemake reports "Job <n> has been submitted with SLURM jobid <id>", SLURM knows that id
(`scontrol show job`: COMPLETED, named after this run, its comment names the rule), and
the job's SLURM log file holds the snakemake run of that rule. The tiny workflow's outputs
also record $SLURM_JOB_ID, set only inside a SLURM job.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "profiles" / "slurm"
LOCAL_PROFILE = REPO / "profiles" / "local"
IN_CI = os.environ.get("CI", "").lower() == "true"
# Rules that may run on the submitting host: only targets without an action.
LOCAL_RULES_ALLOWED = {"all", "analysis"}
# Seconds for one whole snakemake run (the demo through SLURM took ~13 min on a loaded
# 2-core machine).
RUN_TIMEOUT = int(os.environ.get("SLURM_TEST_TIMEOUT", "1500"))


def _slurm_problem() -> str | None:
    """Why SLURM cannot be used here, or None when it can."""
    for tool in ("sinfo", "sbatch", "squeue", "scontrol"):
        if shutil.which(tool) is None:
            return f"`{tool}` not found (run tests/cluster/setup_slurm.sh as root)"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "`scontrol ping` timed out"
    if ping.returncode != 0 or "UP" not in ping.stdout:
        return f"the SLURM controller does not answer: {(ping.stdout + ping.stderr).strip()}"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[cluster]')"
    return None


@pytest.fixture(scope="module")
def slurm_env() -> dict[str, str]:
    """Environment for snakemake runs against the SLURM (skip or, in CI, fail without one)."""
    problem = _slurm_problem()
    if problem:
        if IN_CI:
            pytest.fail(f"CI=true and no usable SLURM: {problem}")
        pytest.skip(problem)
    env = dict(os.environ)
    env.pop("SBATCH_ACCOUNT", None)  # the test cluster has no accounts (no slurmdbd)
    if not env.get("SBATCH_PARTITION"):
        # exercise the profile's partition variable with the cluster's default partition
        parts = subprocess.run(
            ["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, check=True
        ).stdout.split()
        default = [p.rstrip("*") for p in parts if p.endswith("*")]
        if default:
            env["SBATCH_PARTITION"] = default[0]
    return env


def start_snakemake(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start snakemake in cwd, its output (stdout and stderr) to a file beside it (never a pipe:
    a pipe nobody reads while another run is awaited would fill and stall it); ``finish``
    waits for it."""
    cmd = [sys.executable, "-m", "snakemake", *args]
    output = open(cwd.parent / f"{cwd.name}.snakemake-output.log", "w+", encoding="utf-8")
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT)
    proc.output_file = output
    return proc


def run_snakemake(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run snakemake in cwd; return its output (stdout and stderr); fail with it on error."""
    return finish(start_snakemake(args, cwd, env), cwd)


def finish(proc: subprocess.Popen, cwd: Path) -> str:
    """Wait for a started snakemake; return its output; fail with it on error or timeout."""
    cmd = proc.args

    def output() -> str:
        proc.output_file.seek(0)
        text = proc.output_file.read()
        proc.output_file.close()
        return text

    try:
        proc.wait(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # snakemake cancels its SLURM jobs (scancel)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        pytest.fail(f"{' '.join(cmd)} timed out after {RUN_TIMEOUT}s:\n{output()[-8000:]}")
    out = output()
    if proc.returncode != 0:
        logs = "\n".join(
            f"--- {p}\n{p.read_text(errors='replace')[-4000:]}"
            for p in sorted((cwd / ".snakemake" / "slurm_logs").rglob("*.log"))
        )
        pytest.fail(
            f"{' '.join(cmd)} failed ({proc.returncode}) in {cwd}:\n{out[-12000:]}\n{logs[-12000:]}"
        )
    return out


def run_slurm(cwd: Path, env: dict[str, str], *extra: str) -> str:
    return run_snakemake(
        [
            "--profile",
            str(PROFILE),
            # fast polling for short test jobs (MinJobAge must stay > 3x this)
            "--slurm-init-seconds-before-status-checks",
            "2",
            "--slurm-keep-successful-logs",
            *extra,
        ],
        cwd,
        env,
    )


JOB_HEADER = re.compile(
    # rules and checkpoints (validation_verdicts, causal_cells, causal_verdicts) alike
    r"^(?P<local>local)?(?:rule|checkpoint) (?P<rule>\w+):\n"
    r"(?:[ \t]+.*\n)*?[ \t]+jobid: (?P<jobid>\d+)$",
    re.M,
)
SUBMITTED = re.compile(
    r"Job (?P<jobid>\d+) has been submitted with SLURM jobid (?P<slurm>\d+) "
    r"\(log: (?P<log>.+?)\)\.$",
    re.M,
)
RUN_ID = re.compile(r"SLURM run ID: (\S+)")


def scontrol_job(slurm_id: str) -> dict[str, str] | None:
    """SLURM's record of a job; None once SLURM forgot it (MinJobAge after it ended)."""
    out = subprocess.run(
        ["scontrol", "-o", "show", "job", slurm_id], capture_output=True, text=True
    )
    if out.returncode != 0 and "Invalid job id" in out.stderr:
        return None
    assert out.returncode == 0, f"scontrol show job {slurm_id}: {out.stderr}"
    fields = {}
    for token in out.stdout.split():
        key, _, value = token.partition("=")
        fields.setdefault(key, value)
    return fields


def check_all_jobs_went_through_sbatch(log: str) -> dict[int, str]:
    """Every non-local job was submitted with sbatch and completed in SLURM.

    Returns {snakemake jobid: SLURM job id}.
    """
    jobs = {int(m["jobid"]): (m["rule"], bool(m["local"])) for m in JOB_HEADER.finditer(log)}
    assert jobs, f"no jobs ran:\n{log[-4000:]}"
    local = {rule for rule, is_local in jobs.values() if is_local}
    assert local <= LOCAL_RULES_ALLOWED, f"rules run on the submitting host: {local}"
    remote = {jobid: rule for jobid, (rule, is_local) in jobs.items() if not is_local}
    assert remote, "no job was submitted to SLURM"

    submitted = {int(m["jobid"]): (m["slurm"], Path(m["log"])) for m in SUBMITTED.finditer(log)}
    assert set(submitted) == set(remote), (
        f"jobs not submitted with sbatch: {sorted(set(remote) - set(submitted))}; "
        f"submitted: {sorted(submitted)}"
    )
    run_ids = set(RUN_ID.findall(log))
    assert len(run_ids) == 1, f"expected one SLURM run ID, got {run_ids}"
    run_id = run_ids.pop()
    slurm_ids = [slurm for slurm, _ in submitted.values()]
    assert len(set(slurm_ids)) == len(slurm_ids), "two jobs share a SLURM job id"

    forgotten = []
    for jobid, (slurm_id, slurm_log) in submitted.items():
        rule = remote[jobid]
        info = scontrol_job(slurm_id)
        if info is None:  # ended more than MinJobAge ago: its log file must do
            forgotten.append(slurm_id)
        else:
            assert info.get("JobState") == "COMPLETED", (rule, slurm_id, info.get("JobState"))
            assert info.get("JobName") == run_id, (rule, slurm_id, info.get("JobName"))
            assert info.get("Comment", "").startswith(f"rule_{rule}"), (rule, info["Comment"])
        # SLURM itself writes this file (sbatch --output .../%j.log)
        assert slurm_log.is_file(), f"no SLURM log for job {slurm_id} ({rule}): {slurm_log}"
        text = slurm_log.read_text(errors="replace")
        assert re.search(rf"^(local)?(rule|checkpoint) {rule}:$", text, re.M), (
            f"SLURM log {slurm_log} does not show rule {rule}:\n{text[-2000:]}"
        )
    assert len(forgotten) < len(submitted), f"SLURM forgot every job: {forgotten}"
    return {jobid: slurm for jobid, (slurm, _) in submitted.items()}


TINY_SNAKEFILE = textwrap.dedent(
    """\
    rule all:
        input:
            "out/summary.txt",


    rule part:
        output:
            "out/part_{i}.txt",
        resources:
            mem_mb=200,
            runtime=5,
        shell:
            "echo {wildcards.i} $SLURM_JOB_ID > {output}"


    rule summary:
        input:
            expand("out/part_{i}.txt", i=[1, 2]),
        output:
            "out/summary.txt",
        threads: 1
        shell:
            "cat {input} > {output} && echo summary $SLURM_JOB_ID >> {output}"
    """
)


def test_tiny_workflow_runs_through_sbatch(slurm_env, tmp_path):
    (tmp_path / "Snakefile").write_text(TINY_SNAKEFILE)
    log = run_slurm(tmp_path, slurm_env)

    slurm_ids = check_all_jobs_went_through_sbatch(log)
    assert len(slurm_ids) == 3  # part x2, summary; `all` is local
    # each output was written inside its SLURM job
    lines = (tmp_path / "out" / "summary.txt").read_text().split("\n")
    recorded = {line.split()[-1] for line in lines if line.strip()}
    assert recorded == set(slurm_ids.values()), (recorded, slurm_ids)
    # resources reach sbatch: the rule's own and the profile's defaults
    records = [scontrol_job(s) for s in slurm_ids.values()]
    assert all(records), "SLURM forgot a job of this short run (MinJobAge too low?)"
    by_comment = {r["Comment"].split("_wildcards")[0]: r for r in records}
    assert by_comment["rule_part"]["MinMemoryNode"] == "200M"
    assert by_comment["rule_part"]["TimeLimit"] == "00:05:00"
    assert by_comment["rule_summary"]["MinMemoryNode"] == "2000M"
    assert by_comment["rule_summary"]["TimeLimit"] == "01:00:00"
    if slurm_env.get("SBATCH_PARTITION"):
        part = slurm_env["SBATCH_PARTITION"]
        assert f"slurm_partition={part}" in log
        assert {j["Partition"] for j in by_comment.values()} == {part}

    # nothing to do on a second run
    again = run_slurm(tmp_path, slurm_env)
    assert "Nothing to be done" in again, again[-2000:]


# --------------------------------------------------------------- the real demo workflow

DEMO_CONFIG = REPO / "config" / "demo.yaml"
SNAKEFILE = REPO / "Snakefile"
# the Snakefile, the demo's config and every rule file the Snakefile includes
DEMO_NEEDS = [
    SNAKEFILE,
    DEMO_CONFIG,
    *(
        REPO / path
        for path in re.findall(
            r'^\s*include:\s*"([^"]+)"', SNAKEFILE.read_text() if SNAKEFILE.exists() else "", re.M
        )
    ),
]


def require_files(needs: list[Path]) -> None:
    """Fail (never skip, in CI or not) when a file the demo run needs is missing: a missing
    rule file is a broken checkout, not a reason to pass without running."""
    missing = [str(p.relative_to(REPO)) for p in needs if not p.exists()]
    if missing:
        pytest.fail(f"the demo workflow lacks {missing}: a broken checkout (CI={IN_CI})")


def test_a_missing_demo_rule_file_fails_rather_than_skips():
    """Needs no SLURM: the check the demo comparison runs first."""
    assert REPO / "workflow" / "rules" / "analysis.smk" in DEMO_NEEDS  # read from the Snakefile
    require_files(DEMO_NEEDS)  # the checkout has them all
    with pytest.raises(pytest.fail.Exception, match=r"lacks \['workflow/rules/gone.smk'\]"):
        require_files([*DEMO_NEEDS, REPO / "workflow" / "rules" / "gone.smk"])


# What a run needs from the repository, copied so that runs do not touch the checkout. The
# package (src/) is copied too and put first on PYTHONPATH, so both runs use one snapshot of
# the code even when the checkout is edited while the test runs.
WORKFLOW_PARTS = ["Snakefile", "workflow", "config", "resources", "scripts", "src"]


def copy_workflow(dest: Path, env: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """Copy the workflow to dest; return dest and an environment that imports its package."""
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for part in WORKFLOW_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / part)
    env = dict(env)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [str(dest / "src"), env.get("PYTHONPATH", "")] if p
    )
    return dest, env


SMALL_DEMO_CATEGORIES = ("python", "math")


def write_small_demo(copy: Path, yaml) -> None:
    """config/demo.yaml on 2 categories x 4 texts and two SAE families: res at layers 1 and 3,
    attn at its own layer 3 (a family listing its own layers has rules of its own, e.g.
    logit_effects_layers_3): every stage of the demo (assets, extraction, analysis, dashboards,
    methodology with its model variants, validation, comparison, causal, and the later stages
    the demo enables) and so every rule kind, checkpoints included, at a size CI can afford
    twice (on SLURM and locally). Two categories are the fewest every stage accepts; the width
    pair is left out (the same rules on more SAEs), and each job costs two `snakemake` starts on
    SLURM (~3 s of CPU) and a model-loading one ~5-10 s of imports."""
    texts = copy / "resources" / "texts_small"
    texts.mkdir()
    for category in SMALL_DEMO_CATEGORIES:
        items = yaml.safe_load((copy / "resources/texts" / f"{category}.yaml").read_text("utf-8"))
        (texts / f"{category}.yaml").write_text(
            yaml.safe_dump(items[:4], allow_unicode=True), encoding="utf-8"
        )
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    config.update(texts="resources/texts_small", layers=[1, 3])
    config["saes"] = {
        "res": config["saes"]["res"],
        "attn": {**config["saes"]["attn"], "layers": [3]},
    }
    (copy / "config" / "demo_small.yaml").write_text(yaml.safe_dump(config))


def parquet_tables(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*.parquet"))}


def test_demo_workflow_on_slurm_equals_local_run(slurm_env, tmp_path):
    """The offline demo through profiles/slurm: every job via sbatch, tables as a local run's.

    Each run works in its own copy of the workflow (both made before either run), so the
    demo's relative paths (its assets and `results_dir`) land inside that copy and the
    checkout stays untouched.
    """
    require_files(DEMO_NEEDS)
    pl = pytest.importorskip("polars")
    yaml = pytest.importorskip("yaml")
    results_dir = yaml.safe_load(DEMO_CONFIG.read_text()).get("results_dir", "results")
    demo = ["--configfile", "config/demo_small.yaml"]
    on_slurm, slurm_run_env = copy_workflow(tmp_path / "slurm", slurm_env)
    local, local_run_env = copy_workflow(tmp_path / "local", slurm_env)
    for copy in (on_slurm, local):
        write_small_demo(copy, yaml)

    # the local twin runs while the SLURM run waits between its status checks (the executor
    # polls squeue with a growing interval): the two overlap instead of running end to end.
    # Its jobs get the threads SLURM gives them (--cores 2: every rule's `threads`), since
    # torch's reductions (the circuits stage's gradients) depend on the thread count
    local_run = start_snakemake(
        ["--profile", str(LOCAL_PROFILE), "--cores", "2", *demo], local, local_run_env
    )
    log = run_slurm(on_slurm, slurm_run_env, *demo)
    finish(local_run, local)
    slurm_ids = check_all_jobs_went_through_sbatch(log)
    remote_rules = {m["rule"] for m in JOB_HEADER.finditer(log) if not m["local"]}
    # the demo runs extraction.jobs: single (extract_all: every category in one job)
    extraction = [r for r in remote_rules if r.startswith("extract")]
    assert extraction == ["extract_all"], f"extraction jobs on SLURM: {remote_rules}"
    assert len(slurm_ids) >= len(remote_rules)

    slurm_tables = parquet_tables(on_slurm / results_dir)
    local_tables = parquet_tables(local / results_dir)
    assert slurm_tables, f"no Parquet tables under {on_slurm / results_dir}"
    assert sorted(slurm_tables) == sorted(local_tables)
    differ = [
        name
        for name, path in slurm_tables.items()
        if not pl.read_parquet(path).equals(pl.read_parquet(local_tables[name]))
    ]
    assert not differ, f"tables that differ between the SLURM and the local run: {differ}"
