"""Data integrity under hostile and careless input (issue 15): stale results, content changes,
alias bombs, healing, absurd numbers, wrong-layer SAEs, errors that name the file, leftovers,
--config overrides, and extraction memory that does not depend on the SAEs' density.

Real files and real `snakemake` calls on copies of one small finished run (session fixture:
2 categories x 3 texts, layer 1, a local model and SAE that no rule builds); unit tests where the
behaviour is the package's own.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from conftest import demo_config, resource_texts
from integrity_helpers import (
    SCHEMA,
    build_small_run,
    copy_run,
    corrupt_data_pages,
    missing_links,
    output,
    read_config,
    replace_with_old_file,
    run_in_tiny_filesystem,
    run_with_full_results,
    scheduled,
    small_config,
    snakemake,
    snakemake_command,
    startup_error,
    write_config,
    write_texts,
)


@pytest.fixture(scope="session")
def small_run(tmp_path_factory, request) -> Path:
    """One finished small run, never modified: tests work on copies (`run_copy`).
    INTEGRITY_RUN=DIR (development only) keeps it in DIR and reuses it while DIR exists."""
    keep = os.environ.get("INTEGRITY_RUN")
    if keep and (Path(keep) / "results/index.html").is_file():
        return Path(keep)
    root = Path(keep) if keep else tmp_path_factory.mktemp("integrity") / "run"
    return build_small_run(root, request.getfixturevalue("demo_assets"))


@pytest.fixture
def run_copy(small_run, tmp_path) -> Path:
    return copy_run(small_run, tmp_path / "run")


def edit_config(workdir: Path, **changes) -> dict:
    """Set dotted keys (`model__path="x"` sets model.path) in the run's config.yaml."""
    config = read_config(workdir)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = config
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    write_config(workdir, config)
    return config


LADDER = list(zip("abcdefgh", "bcdefghi", strict=True))  # each name aliases the one before
BILLION_LAUGHS = "".join(
    [f"- &a [{', '.join(['lol'] * 9)}]\n"]
    + [f"- &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in LADDER]
)


# -- 3. alias bombs -------------------------------------------------------------------------


def test_bounded_yaml_refuses_bombs_and_recursion_but_keeps_ordinary_anchors():
    from sae_specialists.core.safeyaml import AliasBombError, check_expansion, load_yaml

    with pytest.raises(AliasBombError, match=r"bomb\.yaml: YAML aliases expand .* 490,329"):
        load_yaml(BILLION_LAUGHS, "bomb.yaml")
    with pytest.raises(AliasBombError, match="loop.yaml: a YAML alias refers to a node"):
        load_yaml("- &a [1, *a]\n", "loop.yaml")
    assert load_yaml("a: &x {b: 1}\nc: *x\nd: [*x, *x]\n", "ok.yaml") == {
        "a": {"b": 1},
        "c": {"b": 1},
        "d": [{"b": 1}, {"b": 1}],
    }
    # shared scalars are no expansion (the same small int object, 20,000 times)
    check_expansion({"thresholds": [1] * 20_000}, "config", "fix")
    loaded = yaml.load(BILLION_LAUGHS, Loader=yaml.SafeLoader)  # as Snakemake loads a config
    with pytest.raises(AliasBombError, match="config: YAML aliases expand"):
        check_expansion({"layers": loaded}, "config", "fix")


def test_alias_bomb_in_a_texts_file_fails_fast_naming_the_file(run_copy):
    bomb = run_copy / "texts/bomb.yaml"
    bomb.write_text("- [" + BILLION_LAUGHS.replace("\n- ", ", ").removeprefix("- ") + "]\n")
    proc = snakemake(run_copy, "-n", timeout=60, limit_memory=True)
    message = startup_error(proc)
    assert f"texts: {Path('texts/bomb.yaml')}: YAML aliases expand" in message
    assert "at most 10,000 repeated nodes" in message


def config_bomb(kind: str) -> str:
    """Top-level keys lol_a .. lol_i, each nine aliases of the one before: lists or mappings."""
    if kind == "list":
        first = f"lol_a: &a [{', '.join(['lol'] * 9)}]"
        rest = [f"lol_{b}: &{b} [{', '.join([f'*{a}'] * 9)}]" for a, b in LADDER]
    else:
        first = "lol_a: &a {" + ", ".join(f"k{i}: lol" for i in range(9)) + "}"
        rest = [
            f"lol_{b}: &{b} {{" + ", ".join(f"k{i}: *{a}" for i in range(9)) + "}"
            for a, b in LADDER
        ]
    return "\n".join([first, *rest]) + "\n"


def test_alias_bomb_in_a_config_file_fails_fast_naming_the_file(run_copy):
    text = (run_copy / "config.yaml").read_text()
    text = text.replace("layers:\n- 1\n", "layers: *i\n")  # validation would format it
    assert "*i" in text
    (run_copy / "config.yaml").write_text(config_bomb("list") + text)
    proc = snakemake(run_copy, "-n", timeout=60, limit_memory=True)
    message = startup_error(proc)
    assert f"config file {run_copy / 'config.yaml'}: YAML aliases expand" in message


def test_a_mapping_bomb_as_the_default_config_is_refused_before_snakemake_merges_it(run_copy):
    """config/config.yaml is checked before the Snakefile's `configfile:` hands it to
    Snakemake, whose merge would expand nested mappings; a --configfile is merged by Snakemake
    before the workflow runs, so `python -m sae_specialists.preflight FILE` checks one first."""
    (run_copy / "config").mkdir()
    default = run_copy / "config/config.yaml"
    default.write_text(config_bomb("mapping") + (run_copy / "config.yaml").read_text())
    proc = snakemake(run_copy, "-n", configfile=None, timeout=60, limit_memory=True)
    message = startup_error(proc)
    assert message.startswith(f"config file {Path('config/config.yaml')}: YAML aliases expand")
    check = subprocess.run(
        [sys.executable, "-m", "sae_specialists.preflight", str(default)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 1
    assert check.stderr.startswith(f"config file {default}: YAML aliases expand")


# -- 5. numbers -----------------------------------------------------------------------------


def startup_fails(config: dict) -> str:
    from sae_specialists.core.errors import UserError
    from sae_specialists.startup import startup_checks

    with pytest.raises(UserError) as info:
        startup_checks(config, SCHEMA)
    return str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("analysis.threshold", math.nan, "analysis.threshold: nan is not a finite number"),
        ("analysis.threshold", math.inf, "analysis.threshold: inf is not a finite number"),
        ("methodology.thresholds", [1.0, -math.inf], "methodology.thresholds[1]: -inf is not a"),
        ("layers", [1.0], "layers[0]: 1.0 is not an integer (write 1)"),
        ("extraction.batch_size", 8.0, "extraction.batch_size: 8.0 is not an integer (write 8)"),
        ("analysis.candidates", 1_000_000_000, "analysis.candidates: 1000000000 is greater than"),
        ("analysis.candidates", 2.5, "analysis.candidates: 2.5 is not an integer"),
    ],
)
def test_non_finite_fractional_and_absurd_numbers_fail_at_startup(
    tmp_path, demo_assets, key, value, expected
):
    write_texts(tmp_path / "texts", {"a": ["one text"], "b": ["another text"]})
    config = {
        **small_config(),
        "model": {"path": str(demo_assets / "model")},
        "saes": {"res": {"path": str(demo_assets / "saes/res/layer{layer}")}},
        "texts": str(tmp_path / "texts"),
        "results_dir": str(tmp_path / "results"),
    }
    *parents, last = key.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    message = startup_fails(config)
    assert expected in message
    assert message.startswith("invalid configuration") or "\n" not in message


def log_times(run: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (run / "results/logs").rglob("*.log")}


def test_nan_threshold_through_snakemake_fails_before_any_job(run_copy):
    edit_config(run_copy, analysis__threshold=math.nan)
    before = log_times(run_copy)
    proc = snakemake(run_copy, "--cores", "1", "analysis")
    assert "analysis.threshold: nan is not a finite number" in startup_error(proc)
    assert log_times(run_copy) == before  # no job ran


# -- 1. configured inputs that do not exist -------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("model__path", "gone/model", "config: model.path = 'gone/model' does not exist"),
        (
            "saes__res__path",
            "gone/saes/layer{layer}",
            "config: saes.res.path (layer 1) = 'gone/saes/layer1' does not exist",
        ),
        ("dashboards__corpus", "gone/corpus.txt", "config: dashboards.corpus = 'gone/corpus.txt'"),
        ("texts", "gone/texts", "texts"),
    ],
)
def test_a_configured_input_that_does_not_exist_fails_before_any_job(
    run_copy, key, value, expected
):
    edit_config(run_copy, **{key: value})
    # whatever the target (before the fix: "Nothing to be done", the old model's results)
    for target in ([], ["dashboards"]) if key == "model__path" else ([],):
        proc = snakemake(run_copy, "-n", *target)
        message = startup_error(proc)
        assert expected in message and "does not exist" in message


def test_results_dir_that_is_a_file_or_a_broken_link(run_copy, tmp_path):
    from sae_specialists.core.errors import ConfigError
    from sae_specialists.preflight import check_results_dir

    (run_copy / "afile").write_text("not a directory")
    edit_config(run_copy, results_dir="afile")
    message = startup_error(snakemake(run_copy, "-n"))
    assert message.startswith("config: results_dir = 'afile': afile is a file, not a directory.")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for results_dir, problem in [
        (run_copy / "afile/results", "afile is a file, not a directory"),
        (tmp_path / "dangling", "dangling is a broken symbolic link"),
    ]:
        with pytest.raises(ConfigError, match=problem):
            check_results_dir(results_dir)
    check_results_dir(tmp_path / "new/results")  # made when missing: fine


# -- 7 / 8. the texts directory -------------------------------------------------------------


def test_texts_directory_entries(run_copy):
    texts = run_copy / "texts"
    (texts / "x.yaml").mkdir()
    message = startup_error(snakemake(run_copy, "-n"))
    assert f"texts: {Path('texts/x.yaml')} is a directory, not a category file." in message
    (texts / "x.yaml").rmdir()
    (texts / "y.yaml").symlink_to(run_copy / "nowhere.yaml")
    message = startup_error(snakemake(run_copy, "-n"))
    assert f"texts: {Path('texts/y.yaml')} is a broken symbolic link" in message
    (texts / "y.yaml").unlink()
    # other files are named in a warning; .yml is a category like .yaml; hidden files are quiet
    (texts / "notes.md").write_text("about the texts")
    (texts / "extra.csv").write_text("a,b\n")
    (texts / ".DS_Store").write_bytes(b"\0")
    shutil.move(texts / "social.yaml", texts / "social.yml")
    proc = snakemake(run_copy, "-n")
    assert proc.returncode == 0, output(proc)
    assert "2 file(s) in texts are not category files and are ignored: extra.csv, notes.md" in (
        output(proc)
    )
    assert ".DS_Store" not in output(proc)
    assert "texts/social.yml" in output(proc)  # the extraction of `social` reads the .yml file


# -- 2. content changes with old timestamps -------------------------------------------------


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        (
            "assets/saes/res/layer1/sae_weights.safetensors",
            {"extract_activations", "logit_effects"},
        ),
        ("assets/model/model.safetensors", {"extract_activations", "logit_effects"}),
        ("texts/python.yaml", {"extract_activations"}),
    ],
)
def test_a_replaced_input_with_an_old_timestamp_reruns_its_jobs(run_copy, changed, expected):
    if changed.startswith("texts"):
        assert scheduled(snakemake(run_copy, "-n")) == {}  # the copy is up to date
    path = run_copy / changed
    if changed.endswith(".yaml"):
        items = yaml.safe_load(path.read_text())
        content = yaml.safe_dump([items[0] + " (edited)", *items[1:]]).encode()
    elif "saes" in changed:  # another layer's SAE weights: same size, other content
        content = (run_copy / "assets/saes/res/layer2/sae_weights.safetensors").read_bytes()
    else:
        data = bytearray(path.read_bytes())
        data[-8:] = bytes(b ^ 0xFF for b in data[-8:])  # same size, other values
        content = bytes(data)
    replace_with_old_file(path, content)
    jobs = scheduled(snakemake(run_copy, "-n"))
    assert expected <= set(jobs), jobs
    if changed.startswith("texts"):
        assert jobs["extract_activations"] == 1  # only the edited category's chunk


def test_content_digests_are_cached_and_see_same_size_same_mtime_edits(tmp_path, monkeypatch):
    from sae_specialists.core import checksums

    path = tmp_path / "weights.bin"
    path.write_bytes(b"a" * 1000)
    cache_file = tmp_path / "cache/digests.json"
    reads = []
    real = checksums.file_digest
    monkeypatch.setattr(checksums, "file_digest", lambda p: reads.append(p) or real(p))
    first = checksums.content_params([path], checksums.DigestCache(cache_file))
    again = checksums.content_params([path], checksums.DigestCache(cache_file))
    assert first == again and len(reads) == 1  # the second run reads the cache, not the file
    stat = path.stat()
    path.write_bytes(b"b" * 1000)  # same size; then the old mtime put back
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    changed = checksums.content_params([path], checksums.DigestCache(cache_file))
    assert changed != first and len(reads) == 2  # ctime changed: read again


# -- 9. --config overrides ------------------------------------------------------------------


def test_config_overrides_of_nested_keys_and_lists(run_copy):
    """Snakemake hands nested --config values over as strings ('3', ['1']): read as the schema
    expects, a section's other keys kept, so only the threshold-dependent jobs rerun."""
    overrides = ["analysis={threshold: 3}", "layers=[1]", "methodology={thresholds: [1, 2.5]}"]
    proc = snakemake(run_copy, "-n", "--config", *overrides)
    jobs = scheduled(proc)
    assert {"analysis_specialist_tables", "methodology_sweep"} <= set(jobs), output(proc)
    assert not {"extract_tokens", "extract_activations", "analysis_per_text"} & set(jobs)
    assert "now: 3.0" in output(proc)  # the threshold param is the number 3.0
    proc = snakemake(run_copy, "-n", "--config", "analysis={threshold: high}")
    assert "analysis.threshold: 'high' is not of type 'number'" in startup_error(proc)


# -- 6. an SAE at the wrong layer -----------------------------------------------------------


def test_an_sae_of_another_layer_fails_at_startup_and_the_offset_maps_it(run_copy):
    slot = run_copy / "assets/saes/res/layer1"
    shutil.rmtree(slot)
    shutil.copytree(run_copy / "assets/saes/res/layer3", slot)
    message = startup_error(snakemake(run_copy, "-n"))
    assert "reads 'blocks.3.hook_resid_pre' (block 3) but is configured for layer 1" in message
    assert "saes.res.hook_layer_offset: 2" in message
    edit_config(run_copy, saes__res__hook_layer_offset=2)
    proc = snakemake(run_copy, "-n")
    assert "extract_activations" in scheduled(proc), output(proc)


def test_the_job_that_loads_an_sae_checks_its_block(demo_assets):
    """SAELens releases cannot be checked at startup (their hook is in the SAE's own config):
    the loading code checks every SAE, local or hub, against its layer (+ offset)."""
    from sae_specialists.core.errors import SAEError
    from sae_specialists.extraction.saes import hook_layer_problem, load_sae

    layer3 = str(demo_assets / "saes/res/layer3")
    with pytest.raises(SAEError, match=r"reads 'blocks.3.hook_resid_pre' \(block 3\) but is conf"):
        load_sae("res", 1, {"path": layer3})
    assert load_sae("res", 1, {"path": layer3, "block": 3}).hook_name == "blocks.3.hook_resid_pre"
    where = "saes: SAE 'res'"
    assert hook_layer_problem("res", 12, "blocks.11.hook_resid_post", 11, where) is None
    assert "hook_layer_offset: 5" in hook_layer_problem("res", 6, "blocks.11.hook_z", 6, where)


# -- 4. healing: every target rebuilds what it needs ----------------------------------------

SHARD = "results/activations/sae=res/layer=1/category=python/chunk=00000/activations.parquet"


@pytest.mark.parametrize(
    ("deleted", "target", "rebuilt"),
    [
        (SHARD, "analysis", "extract_activations"),
        (SHARD, "methodology", "extract_activations"),
        ("results/per_text/sae=res/layer=1.parquet", "analysis", "analysis_per_text"),
        ("results/logits/sae=res/layer=1.parquet", "dashboards", "logit_effects"),
        ("results/charts/peak_by_layer.png", "all", "analysis_peak_charts"),
    ],
)
def test_every_target_rebuilds_what_is_missing(run_copy, deleted, target, rebuilt):
    (run_copy / deleted).unlink()
    jobs = scheduled(snakemake(run_copy, "-n", target))
    assert rebuilt in jobs, jobs


def test_pages_link_only_files_that_exist(small_run):
    assert missing_links(small_run / "results") == []


def test_a_corrupt_shard_is_named_and_deleting_it_heals(run_copy):
    shard = run_copy / SHARD
    corrupt_data_pages(shard)
    # a hidden temporary file of a killed writer, next to the shard
    leftover = shard.with_name(".activations.parquet.killed.tmp")
    leftover.write_bytes(b"PAR1 half a shard")
    per_text = run_copy / "results/per_text/sae=res/layer=1.parquet"
    before = per_text.read_bytes()
    proc = snakemake(run_copy, "--cores", "2", "--forcerun", "analysis_per_text", "analysis")
    assert proc.returncode != 0
    log = (run_copy / "results/logs/analysis/per_text_sae=res_layer=1.log").read_text()
    error = [line for line in log.splitlines() if " ERROR " in line]
    assert len(error) == 1, log
    assert f"ERROR {SHARD} is corrupt (" in error[0]
    assert "Delete it and rerun snakemake: it is rebuilt" in error[0]
    assert not per_text.exists() or per_text.read_bytes() == before  # nothing half-written
    shard.unlink()  # the advice
    proc = snakemake(run_copy, "--cores", "2", "analysis")
    assert proc.returncode == 0, output(proc)
    assert shard.is_file() and not leftover.exists()
    assert missing_links(run_copy / "results") == []


# -- 7. disk full ---------------------------------------------------------------------------

STREAM_INTO_FULL_DISK = """
import sys
import numpy as np, pyarrow as pa
from sae_specialists.core.contract import ACTIVATIONS_SCHEMA
from sae_specialists.core.errors import UserError
from sae_specialists.core.io import AtomicParquetWriter
n = 200_000
rng = np.random.default_rng(0)
table = pa.table({"text_id": pa.array(["t%d" % i for i in rng.integers(0, 10**6, n)]),
                  "token_pos": pa.array(rng.integers(0, 10**6, n), pa.int32()),
                  "feature": pa.array(rng.integers(0, 10**6, n), pa.int32()),
                  "activation": pa.array(rng.random(n), pa.float32())}, schema=ACTIVATIONS_SCHEMA)
writer = AtomicParquetWriter(sys.argv[1], ACTIVATIONS_SCHEMA)
try:
    for _ in range(20):
        writer.write(table)
    writer.commit({"x": 1})
except UserError as err:
    print("USER ERROR:", err)
    sys.exit(1)
"""

REPORT_INTO_FULL_DISK = """
import sys
from sae_specialists.core.errors import UserError
from sae_specialists.core.io import write_text
try:
    write_text("<p>" + "x" * 2_000_000 + "</p>", sys.argv[1])
except UserError as err:
    print("USER ERROR:", err)
    sys.exit(1)
"""


@pytest.mark.parametrize("code", [STREAM_INTO_FULL_DISK, REPORT_INTO_FULL_DISK])
def test_disk_full_is_one_clear_line_and_leaves_nothing(tmp_path, code):
    full = tmp_path / "full"
    target = full / "out.parquet"
    proc = run_in_tiny_filesystem(full, 256, [sys.executable, "-c", code, str(target)])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = proc.stdout.strip()
    assert line.startswith(f"USER ERROR: disk full while writing {target}:"), proc.stdout
    assert "\n" not in line and "Traceback" not in proc.stderr


def test_disk_full_in_the_report_job(run_copy):
    """The real report job writing onto a full file system: one message naming the file."""
    before = {p: p.read_bytes() for p in (run_copy / "results").rglob("*") if p.is_file()}
    argv = snakemake_command(run_copy, "--cores", "1", "analysis")
    outputs = ["analysis.html", "summary.md", "token_views"]  # the report job's
    proc = run_with_full_results(run_copy, argv, outputs)
    text = output(proc)
    assert proc.returncode != 0, text
    # token views (analysis_token_views) and the page and summary (analysis_report)
    assert re.search(r"analysis_(report|token_views)", text) and "Traceback" not in text, text
    message = text[text.index("sae-specialists: the run stopped.") :].splitlines()
    assert any(m.startswith("disk full while writing results/") for m in message), message
    # the full file system is gone with the run: the results on disk were never touched
    assert {p: p.read_bytes() for p in (run_copy / "results").rglob("*") if p.is_file()} == before


# -- 8. leftovers of killed writers ---------------------------------------------------------

KILLED_WRITER = """
import os, signal, sys
import pyarrow as pa
from sae_specialists.core.contract import ACTIVATIONS_SCHEMA
from sae_specialists.core.io import AtomicParquetWriter
writer = AtomicParquetWriter(sys.argv[1], ACTIVATIONS_SCHEMA)
writer.write(pa.table({"text_id": ["t"], "token_pos": pa.array([0], pa.int32()),
                       "feature": pa.array([1], pa.int32()),
                       "activation": pa.array([1.0], pa.float32())}, schema=ACTIVATIONS_SCHEMA))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_next_write_removes_temporary_files_of_killed_writers(tmp_path):
    from sae_specialists.core.contract import ACTIVATIONS_SCHEMA
    from sae_specialists.core.io import write_table_atomic

    target = tmp_path / "shard/activations.parquet"
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target)])
    assert proc.returncode == -signal.SIGKILL
    leftovers = list(target.parent.glob(".activations.parquet.*.tmp"))
    assert len(leftovers) == 1 and not target.exists()
    other = target.parent / ".other.parquet.x.tmp"  # another file's: not ours to remove
    other.write_bytes(b"")
    write_table_atomic(ACTIVATIONS_SCHEMA.empty_table(), target)
    assert sorted(p.name for p in target.parent.iterdir()) == [".other.parquet.x.tmp", target.name]


# -- 8. control characters ------------------------------------------------------------------


def test_control_characters_are_shown_visibly_in_html(small_run):
    pages = [p for p in (small_run / "results").rglob("*.html")]
    assert pages
    raw = [p for p in pages if any(ch in p.read_text("utf-8") for ch in "\x00\x07\x1b")]
    assert raw == []
    views = (small_run / "results/token_views").rglob("python.html")
    assert any("\\x00" in p.read_text("utf-8") and "\\x07" in p.read_text("utf-8") for p in views)


def test_token_text_shows_control_characters():
    from sae_specialists.core.tokens import token_text

    assert token_text(b"a\x00b\x07c\x1b") == "a\\x00b\\x07c\\x1b"


# -- 10. extraction memory does not depend on the SAEs' density ------------------------------


def test_windows_are_sized_by_the_rows_they_produce(tmp_path, demo_assets):
    """Each window gets as many tokens as produce the row budget at the density seen so far, so
    the rows held at once do not grow with the SAEs' L0; the shards are the same as with one
    big window."""
    from sae_specialists.core.settings import load_settings
    from sae_specialists.extraction.loading import ModelAndSAEs
    from sae_specialists.extraction.memory import PROBE_TOKENS
    from sae_specialists.extraction.pipeline import extract_category

    words = ["def", "return", "x", "(", ")", ":", "+", "#", "lol", "🔥", "the", "of"]
    corpus = tmp_path / "texts/python.jsonl"
    corpus.parent.mkdir()
    with open(corpus, "w") as handle:
        for i in range(600):
            text = " ".join(words[(i * 7 + k) % len(words)] for k in range(20 + i % 9))
            handle.write(json.dumps({"text": text}) + "\n")
    settings = load_settings(
        {
            "model": {"path": str(demo_assets / "model")},
            "device": "cpu",
            "saes": {"res": {"path": str(demo_assets / "saes/res/layer{layer}")}},
            "layers": [1, 3],
            "texts": str(tmp_path / "texts"),
            "results_dir": str(tmp_path / "r"),
            "extraction": {"batch_size": 8, "chunk_size": None},
        },
        SCHEMA,
    )
    job = ModelAndSAEs.of(settings)

    def run(name, **kwargs):
        windows = []
        out = {key: str(tmp_path / name / f"{key[1]}.parquet") for key in job.saes}
        extract_category(
            job,
            settings.extraction,
            "python",
            str(corpus),
            None,
            out,
            on_window=windows.append,
            **kwargs,
        )
        return windows, {key: pl.read_parquet(path) for key, path in out.items()}

    budget = 20_000
    windows, shards = run("budget", window_rows=budget)
    assert sum(w.n_tokens for w in windows[:1]) <= PROBE_TOKENS + 64  # the probe
    assert len(windows) >= 5
    assert all(w.rows <= 1.2 * budget for w in windows[1:]), [w.rows for w in windows]
    assert sum(w.rows for w in windows) == sum(df.height for df in shards.values())
    one_window, reference = run("one", window_tokens=10**6)
    assert len(one_window) == 1
    for key in shards:  # other batches: the same rows, floats equal up to float32 rounding
        got, want = shards[key], reference[key]
        assert got.drop("activation").equals(want.drop("activation"))
        assert np.allclose(got["activation"], want["activation"], rtol=1e-4, atol=1e-6)


def _denser_copy(demo_assets, out):
    """The demo's layer-3 SAE with every encoder bias raised by 1.5: ~6x more features fire per
    token (5.7 -> 32.6 on the python texts), the same model and texts."""
    import torch

    from sae_specialists.extraction.saes import load_sae

    dense = load_sae("res", 3, {"path": str(demo_assets / "saes/res/layer3")})
    with torch.no_grad():
        dense.sae.b_enc.add_(1.5)
    dense.sae.save_model(str(out))
    return out


@pytest.fixture(scope="module")
def python_corpus(tmp_path_factory):
    texts = tmp_path_factory.mktemp("texts")
    items = resource_texts(("python",), n=10)["python"]  # 2,164 tokens
    (texts / "python.yaml").write_text(yaml.safe_dump(items * 4, allow_unicode=True), "utf-8")
    return texts


def _windows(demo_assets, corpus, sae_dir, out, window_rows=None, window_tokens=None):
    """[(tokens, rows)] of each window of one extraction job, and the most rows of one text."""
    from sae_specialists.core.settings import load_settings
    from sae_specialists.extraction.loading import ModelAndSAEs
    from sae_specialists.extraction.pipeline import extract_category

    config = demo_config(demo_assets, corpus, out)
    config["saes"] = {"res": {"path": str(sae_dir)}}
    config["layers"] = [3]
    settings = load_settings(config, SCHEMA)
    seen = []
    shard = out / "activations.parquet"
    extract_category(
        ModelAndSAEs.of(settings),
        settings.extraction,
        "python",
        str(corpus / "python.yaml"),
        None,
        {("res", 3): str(shard)},
        window_rows=window_rows,
        window_tokens=window_tokens,
        on_window=lambda r: seen.append((r.n_tokens, r.rows)),
    )
    per_text = pl.read_parquet(shard).group_by("text_id").len()["len"].max()
    return seen, per_text


def test_a_denser_sae_gets_shorter_windows_not_more_rows(
    demo_assets, python_corpus, tmp_path, monkeypatch
):
    """With fixed windows a window's rows grow with the SAE's density (so did the job's memory:
    2.2 GB at 64 active features per token, 3.9 GB at ~93, bench/RESULTS.md); with the row
    budget the denser SAE gets shorter windows and every window stays near the budget."""
    import sae_specialists.extraction.memory as memory

    monkeypatch.setattr(memory, "PROBE_TOKENS", 256)  # a short probe: more windows to check
    saes = {"sparse": demo_assets / "saes/res/layer3"}
    saes["dense"] = _denser_copy(demo_assets, tmp_path / "dense")
    fixed = {
        name: _windows(demo_assets, python_corpus, path, tmp_path / name, window_tokens=2000)
        for name, path in saes.items()
    }
    density = {k: sum(r for _, r in w) / sum(t for t, _ in w) for k, (w, _) in fixed.items()}
    assert density["dense"] > 4 * density["sparse"], density
    rows = int(2000 * density["sparse"])  # the rows of a 2,000-token window of the sparse SAE
    assert max(r for _, r in fixed["dense"][0]) > 3 * rows  # what fixed windows do

    for name, sae_dir in saes.items():
        windows, text_rows = _windows(
            demo_assets, python_corpus, sae_dir, tmp_path / f"budget-{name}", window_rows=rows
        )
        after_probe = windows[1:-1]  # the probe, and the file's last (partial) window apart
        assert len(after_probe) >= 2, (name, windows)
        # a window ends with the text that reaches its token count: up to one text's rows over
        assert all(r <= 1.25 * rows + text_rows for _, r in after_probe), (name, windows, rows)
        if name == "dense":
            assert max(r for _, r in windows) < max(r for _, r in fixed["dense"][0]) / 2
            mean_tokens = sum(t for t, _ in after_probe) / len(after_probe)
            assert mean_tokens < 2000 / 2.5, windows
