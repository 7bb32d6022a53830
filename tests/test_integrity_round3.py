"""Data integrity round 3 (bad SAE files, odd characters, colliding exports, verdicts of tests
that did not run, job crashes): every case fails at start or ends with the project's message.

Unit-level on small inputs: the start checks are called in-process (``startup_checks``) on a
config over the demo's model and one copied SAE; no Snakemake run, no model load."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from sae_specialists.core.errors import ConfigError, SAEError, TextsError, UserError
from sae_specialists.startup import startup_checks

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


# -- a small config over the demo's model and one copied SAE ---------------------------------------


@pytest.fixture
def run(tmp_path, demo_assets) -> SimpleNamespace:
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "python.yaml").write_text(yaml.safe_dump(["def f(): pass", "import os"]))
    (texts / "social.yaml").write_text(yaml.safe_dump(["lol ok", "omg wow"]))
    sae = tmp_path / "saes/res/layer1"
    shutil.copytree(demo_assets / "saes/res/layer1", sae)
    config = {
        "model": {"path": str(demo_assets / "model")},
        "device": "cpu",
        "saes": {"res": {"path": str(tmp_path / "saes/res/layer{layer}")}},
        "layers": [1],
        "texts": str(texts),
        "results_dir": str(tmp_path / "results"),
    }
    return SimpleNamespace(root=tmp_path, texts=texts, sae=sae, config=config)


def check(config: dict, overrides=None, **record):
    """``record``: ``checked_files=PATH`` (the record of inputs that passed)."""
    return startup_checks(json.loads(json.dumps(config)), SCHEMA, overrides=overrides, **record)


def fails(config: dict, kind=UserError, overrides=None) -> str:
    with pytest.raises(kind) as err:
        check(config, overrides)
    return str(err.value)


def test_the_small_config_passes(run):
    check(run.config)


# -- SAE files -------------------------------------------------------------------------------------


def _edit_weights(sae_dir: Path, edit) -> None:
    from safetensors.numpy import load_file, save_file

    path = sae_dir / "sae_weights.safetensors"
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))


def _edit_cfg(sae_dir: Path, edit) -> None:
    path = sae_dir / "cfg.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


def test_a_nan_column_in_w_enc_fails_at_start_naming_file_and_tensor(run):
    def nan_column(t):
        t["W_enc"][:, 3] = np.nan

    _edit_weights(run.sae, nan_column)
    message = fails(run.config, SAEError)
    assert "sae_weights.safetensors" in message and "tensor W_enc" in message
    assert "NaN or infinite" in message


def test_an_infinite_b_enc_fails_at_start(run):
    def inf_bias(t):
        t["b_enc"][5] = np.inf

    _edit_weights(run.sae, inf_bias)
    message = fails(run.config, SAEError)
    assert "tensor b_enc" in message and "element 5" in message


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda cfg: {k: v for k, v in cfg.items() if k != "d_sae"}, "has no 'd_sae'"),
        (lambda cfg: [], "holds a JSON list, not an object"),
        (lambda cfg: {**cfg, "d_sae": cfg["d_sae"] + 28}, "tensor W_enc has shape"),
        (lambda cfg: {**cfg, "d_in": "64"}, "d_in is '64'; it must be a positive integer"),
    ],
    ids=["no-d_sae", "list", "d_sae-vs-weights", "d_in-string"],
)
def test_a_bad_cfg_json_fails_at_start_with_the_projects_message(run, edit, expected):
    _edit_cfg(run.sae, edit)
    message = fails(run.config, SAEError)
    assert expected in message and "cfg.json" in message or "safetensors" in message, message


PATTERN = "blocks.1.attn.hook_pattern"
TYPO = "blocks.1.hook_resid_pree"


def test_an_sae_on_an_attention_pattern_fails_at_start(run):
    _edit_cfg(
        run.sae,
        lambda cfg: {
            **cfg,
            "metadata": {**cfg["metadata"], "hook_name": "blocks.1.attn.hook_pattern"},
        },
    )
    message = fails(run.config, SAEError)
    assert "not one vector per token" in message and "hook_pattern" in message


def test_a_hook_the_model_lacks_fails_at_start_naming_similar_hooks(run):
    _edit_cfg(
        run.sae,
        lambda cfg: {
            **cfg,
            "metadata": {**cfg["metadata"], "hook_name": "blocks.1.hook_resid_pree"},
        },
    )
    message = fails(run.config, SAEError)
    assert "does not have" in message and "'blocks.1.hook_resid_pre'" in message, message


def test_the_job_time_hook_checks_name_the_hook():
    from sae_specialists.extraction.encode import check_hook_shape
    from sae_specialists.extraction.hooks import similar_hooks

    sae = SimpleNamespace(family="res", layer=1, source={"path": "x"}, hook_name="h")
    check_hook_shape(sae, (2, 7, 64), 2, 7)
    check_hook_shape(sae, (2, 7, 4, 16), 2, 7)  # hook_z: flattened later
    with pytest.raises(SAEError, match="not one vector per token"):
        check_hook_shape(sae, (2, 4, 7, 7), 2, 7)  # [batch, head, query, key]
    hooks = ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre", "blocks.1.hook_mlp_out"]
    assert similar_hooks("blocks.1.hook_resid_pree", hooks)[0] == "blocks.1.hook_resid_pre"
    assert similar_hooks("q", hooks) == sorted(hooks)  # nothing close: some hooks, never []


def test_the_engine_refuses_a_hook_that_is_not_per_token(demo_assets):
    """An SAE no start check saw (a demo SAE built by a rule, a release): the extraction engine
    names the hook and its shape instead of an IndexError in the token mask."""
    from sae_specialists.extraction.engine import extract
    from sae_specialists.extraction.models import load_local_model
    from sae_specialists.extraction.saes import load_sae
    from sae_specialists.extraction.texts import Text
    from sae_specialists.extraction.tokenize import tokenize_texts

    model = load_local_model(demo_assets / "model")
    sae = load_sae("res", 1, {"path": str(demo_assets / "saes/res/layer1")})
    sae.hook_name = PATTERN
    texts = [Text("a-1", "a", "hello world"), Text("a-2", "a", "the cat sat on the mat")]
    with pytest.raises(SAEError, match=r"hook_pattern', whose activations have shape \[2, 4,"):
        extract(model, [sae], tokenize_texts(model, texts))


def test_a_passed_sae_is_not_read_again_until_it_changes(run, monkeypatch):
    from sae_specialists.extraction import saes

    calls = []
    original = saes.check_sae_files
    monkeypatch.setattr(saes, "check_sae_files", lambda *a: calls.append(1) or original(*a))
    record = run.root / "checked.json"
    check(run.config, checked_files=record)
    check(run.config, checked_files=record)
    assert len(calls) == 1
    _edit_weights(run.sae, lambda t: t["b_dec"].__setitem__(0, np.inf))
    with pytest.raises(SAEError, match="tensor b_dec"):
        check(run.config, checked_files=record)


# -- --config values that are not YAML -------------------------------------------------------------


def test_config_override_that_is_not_yaml(run):
    # Snakemake merges the --config value into the config, then the workflow reads it as YAML
    given = {"analysis": "{threshold: 3"}
    message = fails({**run.config, **given}, ConfigError, overrides=given)
    assert "--config analysis" in message and "is not valid YAML" in message


def test_unquoted_layer_placeholder_in_a_saes_override(run):
    overrides = {"saes": "{res: {path: saes/res/layer{layer}}}"}
    message = fails({**run.config, "saes": overrides["saes"]}, ConfigError, overrides=overrides)
    assert "'{layer}' inside a value must be quoted" in message


# -- causal prompts and scales ---------------------------------------------------------------------


def test_a_prompt_longer_than_the_context_fails_at_start(run):
    long_prompt = " ".join(["the weather"] * 400)  # > 512 tokens of the demo model
    config = {**run.config, "causal": {"enabled": True, "prompts": ["ok", long_prompt]}}
    message = fails(config, ConfigError)
    assert "causal.prompts[1]" in message and "context of 512 tokens" in message


def test_steering_scales_that_overflow_the_dtype_fail_at_start(run):
    config = {**run.config, "causal": {"enabled": True, "steer_scales": [0, 1e39]}}
    message = fails(config, ConfigError)
    assert "causal.steer_scales holds 1e+39" in message and "float32" in message


def test_the_causal_job_checks_clamp_values_with_the_peaks():
    from sae_specialists.causal.checks import check_scales_fit

    check_scales_fit([0, 5], "torch.float16", peak=1000.0)
    with pytest.raises(ConfigError, match="overflows the model's dtype float16"):
        check_scales_fit([0, 100], "torch.float16", peak=1000.0)


# -- exports, families, categories -----------------------------------------------------------------


def test_families_whose_export_ids_collide(run):
    saes = {"res_a": run.config["saes"]["res"], "res-a": run.config["saes"]["res"]}
    message = fails({**run.config, "saes": saes}, ConfigError)
    assert "'res-a' and 'res_a'" in message and "export.sae_sets" in message
    check({**run.config, "saes": saes, "export": {"sae_sets": {"res_a": "res-underscore"}}})


def test_export_sae_sets_naming_no_family(run):
    message = fails({**run.config, "export": {"sae_sets": {"nope": "x"}}}, ConfigError)
    assert "export.sae_sets names ['nope']" in message


def test_category_names_that_differ_only_in_case(run):
    (run.texts / "Python.yaml").write_text(yaml.safe_dump(["print(1)"]))
    message = fails(run.config, TextsError)
    assert "differ only in letter case" in message


# -- text files of every format, at start ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("code.jsonl", b'{"text": "ok"}\n{"text": "bad \\ud800 escape"}\n', "lone surrogate"),
        ("code.jsonl", b'{"text": "ok"}\n{"text": "no end"\n', "line 2 is not valid JSON"),
        ("code.jsonl", b'{"text": "ok"}\n{"text": "\xff"}\n', "not valid UTF-8 (line 2"),
        ("code.txt", b"fine\nbad \xc3\x28 byte\n", "not valid UTF-8 (line 2"),
    ],
    ids=["surrogate", "json", "jsonl-utf8", "txt-utf8"],
)
def test_text_problems_of_large_formats_fail_at_start(run, name, content, expected):
    (run.texts / name).write_bytes(content)
    assert expected in fails(run.config, TextsError)


def test_a_surrogate_in_the_reference_corpus_fails_at_start(run):
    corpus = run.root / "corpus.jsonl"
    corpus.write_bytes(b'{"text": "ok"}\n{"text": "\\udc80"}\n')
    config = {**run.config, "dashboards": {"corpus": str(corpus)}}
    assert "lone surrogate" in fails(config, TextsError)


def test_a_bad_file_in_the_validation_test_set_fails_at_start(run):
    test_set = run.root / "test_texts"
    test_set.mkdir()
    (test_set / "python.jsonl").write_bytes(b'{"text": "ok"}\n{"text": 3}\n')
    config = {**run.config, "validation": {"enabled": True, "test_texts": str(test_set)}}
    assert "line 2: field 'text' must be a string" in fails(config, TextsError)


def test_a_utf8_bom_opening_a_file_is_not_text(tmp_path):
    from sae_specialists.extraction.corpus import count_texts, load_texts

    jsonl = tmp_path / "a.jsonl"
    jsonl.write_bytes(b'\xef\xbb\xbf{"text": "first"}\n{"text": "second"}\n')
    txt = tmp_path / "b.txt"
    txt.write_bytes(b"\xef\xbb\xbffirst\nsecond\n")
    for path in (jsonl, txt):
        assert [t.text for t in load_texts(path)] == ["first", "second"]
        assert count_texts(path) == 2


def test_a_large_jsonl_costs_a_scan_not_a_load(tmp_path):
    import tracemalloc

    from sae_specialists.extraction.corpus import scan_texts

    path = tmp_path / "big.jsonl"
    line = json.dumps({"text": "x" * 200, "meta": list(range(20))}) + "\n"
    with open(path, "w") as handle:
        for _ in range(30_000):  # ~9 MB
            handle.write(line)
    tracemalloc.start()
    assert scan_texts(path) == 30_000
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1_000_000, peak  # a line at a time, not the file


# -- verdicts of tests that did not run ------------------------------------------------------------


def test_no_permutations_means_null_not_tested():
    from sae_specialists.validation.verdict import verdict

    cell = {"has_specialist": True, "heldout_auroc": 1.0, "p_value": None, "floor_auroc": 0.5}
    v = verdict(cell, {})
    assert v["verdict"] == "generalises, null not tested" and v["beats_null"] is None
    assert v["fails_heldout"] is False and "not better than chance" not in v["verdict_text"]
    poor = verdict({**cell, "heldout_auroc": 0.4}, {})
    assert poor["verdict"] == "does not generalise, null not tested" and poor["fails_heldout"]
    untested = verdict({**cell, "heldout_auroc": None}, {})
    assert untested["verdict"] == "held-out not tested, null not tested"
    assert untested["generalises"] is None and untested["fails_heldout"] is False
    tested = verdict({**cell, "p_value": 0.2}, {})
    assert tested["verdict"] == "not better than chance" and tested["beats_null"] is False


def test_verdict_columns_hold_not_tested_as_null():
    import polars as pl

    from sae_specialists.validation.table import with_verdicts

    cells = pl.DataFrame(
        {
            "sae": ["res"],
            "layer": [1],
            "category": ["python"],
            "has_specialist": [True],
            "heldout_auroc": [1.0],
            "p_value": [None],
            "floor_auroc": [0.5],
        },
        schema_overrides={"p_value": pl.Float64},
    )
    out = with_verdicts(cells, None, alpha=0.05, min_auroc=0.7, probe_margin=0.05, shown=())
    assert out["beats_null"].to_list() == [None] and out["fails_heldout"].to_list() == [False]


# -- text on pages ---------------------------------------------------------------------------------

RAW_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def test_a_prompt_with_nul_and_rtl_override_is_drawn_visibly():
    from sae_specialists.causal.pages import steering_html
    from sae_specialists.core.html import token_html

    row = {"prompt": "\u202e\u0000evil", "scale": None, "value": None, "continuation": "a\u202eb"}
    drawn = steering_html([row])
    assert not RAW_INVISIBLE.search(drawn), drawn
    assert "\\u202e" in drawn and "\\x00" in drawn
    assert token_html("\u2067x\u2069") == "\\u2067x\\u2069"


def test_an_rtl_override_in_a_token_view_is_visible():
    from sae_specialists.core.html import Tok, tokens_html
    from sae_specialists.core.tokens import token_text

    assert token_text("a\u202eb".encode()) == "a\\u202eb"
    drawn = tokens_html([Tok("\u202e".encode(), 0, 1.0), Tok(b"x", 1, 0.0)])
    assert not RAW_INVISIBLE.search(drawn) and "\\u202e" in drawn


# -- temporary files of the chart writer -----------------------------------------------------------


def test_a_failed_chart_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    import altair as alt
    import altair.utils.save as altair_save

    from sae_specialists.analysis.charts import save_chart

    chart = alt.Chart(alt.Data(values=[{"x": 1}])).mark_point().encode(x="x:Q")
    target = tmp_path / "specialists_found.html"
    old = tmp_path / f".{target.name}.tmp-4242.html"  # left by the writer before this fix
    old.write_text("stale")

    def full_disk(spec, fp, **kwargs):
        Path(fp).write_text("partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(altair_save, "save", full_disk)
    with pytest.raises(UserError, match="disk full"):
        save_chart(chart, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [], list(tmp_path.iterdir())


# -- a job that crashes ends with the project's message --------------------------------------------


def test_an_unexpected_error_in_a_job_ends_with_one_closing_block(tmp_path):
    log = tmp_path / "logs/job.log"
    failures = tmp_path / "failures"
    script = (
        "from types import SimpleNamespace\n"
        "from sae_specialists.core.jobs import run\n"
        "def crash(smk):\n"
        "    raise IndexError('index 7 is out of bounds for dimension 1 with size 5')\n"
        f"run(crash, SimpleNamespace(log=[{str(log)!r}], rule='causal_layer', wildcards={{}}))\n"
    )
    env = {**os.environ, "SAE_SPECIALISTS_FAILURES": str(failures)}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Traceback" in log.read_text() and "IndexError" in log.read_text()
    from sae_specialists.core.jobs import failure_report

    report = failure_report(failures)
    assert "unexpected error IndexError: index 7 is out of bounds" in report
    assert str(log) in report


def test_an_unexpected_error_outside_a_run_still_prints_the_message(tmp_path, capsys):
    from sae_specialists.core.jobs import logged

    smk = SimpleNamespace(log=[str(tmp_path / "x.log")], rule="r", wildcards={})
    with pytest.raises(SystemExit) as exit_:
        with logged(smk, "r"):
            raise KeyError("d_sae")
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "unexpected error KeyError" in err and "Traceback" not in err
    logging.getLogger().handlers.clear()


# -- property: random bytes and Unicode through every text format into shards and pages ------------

POOL = (
    [chr(c) for c in range(0x20)]
    + ["\x7f", "\x85", "\x9b", "\u00a0", "\u061c", "\u200b", "\u200d", "\u200e", "\u200f"]
    + [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2066, 0x206A)]
    + ["\u0301", "\u0308", "\u20dd", "\ud800", "\udfff", "\ufeff", "\ufffd", "\u2028"]
    + list('aé中ж🙂👩‍💻 \t\n\r{}"\\:-#')
)


def _random_text(rng: random.Random) -> str:
    return "".join(rng.choice(POOL) for _ in range(rng.randint(1, 12)))


def _random_bytes(rng: random.Random) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))


def _write_format(path: Path, texts: list[str], raw: list[bytes]) -> None:
    """One category file of ``path``'s format holding ``texts`` (any Unicode, surrogates too)
    and ``raw`` byte strings where the format stores bytes."""
    if path.suffix == ".yaml":
        body = yaml.safe_dump(texts, allow_unicode=False).encode("utf-8", "surrogatepass")
        path.write_bytes(body + b"".join(b"- " + r.replace(b"\n", b" ") + b"\n" for r in raw))
    elif path.suffix == ".jsonl":
        lines = [json.dumps({"text": t}).encode() for t in texts]
        lines += [b'{"text": "' + r.replace(b"\n", b" ") + b'"}' for r in raw]
        path.write_bytes(b"\n".join(lines) + b"\n")
    elif path.suffix == ".txt":
        lines = [t.encode("utf-8", "surrogatepass") for t in texts] + raw
        path.write_bytes(b"\n".join(lines) + b"\n")
    else:
        safe = [t for t in texts if not re.search("[\ud800-\udfff]", t)]
        pq.write_table(pa.table({"text": pa.array(safe, pa.string())}), path)


@pytest.fixture(scope="module")
def byte_tokenizer(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(["the cat sat on the mat", "def f(): return 1"] * 10, trainer)
    path = tmp_path_factory.mktemp("tok")
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>").save_pretrained(path)
    return AutoTokenizer.from_pretrained(str(path))


@pytest.mark.parametrize("suffix", [".yaml", ".jsonl", ".txt", ".parquet"])
def test_random_text_through_every_format_into_shards_and_pages(tmp_path, byte_tokenizer, suffix):
    from sae_specialists.causal.pages import steering_html
    from sae_specialists.core.html import Tok, page, token_html, tokens_html
    from sae_specialists.extraction.corpus import count_texts, iter_texts, scan_texts
    from sae_specialists.extraction.engine import _tokens_table
    from sae_specialists.extraction.tokenize import TokenizedText

    rng = random.Random(f"round3{suffix}")
    bos = byte_tokenizer.bos_token_id
    outcomes = {"ok": 0, "refused": 0}
    for trial in range(40):
        texts = [_random_text(rng) for _ in range(rng.randint(1, 4))]
        raw = [_random_bytes(rng) for _ in range(rng.randint(0, 2))] if trial % 2 else []
        path = tmp_path / f"c{trial}{suffix}"
        _write_format(path, texts, raw)
        try:
            n = scan_texts(path)
        except TextsError as err:  # the start check refuses: the message names the file
            assert str(path) in str(err)
            outcomes["refused"] += 1
            continue
        read = list(iter_texts(path))  # what the extraction job reads: the same texts
        assert len(read) == n == count_texts(path)
        outcomes["ok"] += 1
        tokenized = [
            TokenizedText(t, [bos] + byte_tokenizer(t.text, add_special_tokens=False)["input_ids"])
            for t in read
        ]
        shard = _tokens_table(byte_tokenizer, tokenized, {}).to_pylist()
        for t in read:
            rows = [r for r in shard if r["text_id"] == t.text_id and not r["bos"]]
            assert b"".join(r["token_bytes"] for r in rows) == t.text.encode("utf-8")
            toks = [Tok(r["token_bytes"], r["token_pos"], 0.5, 0.5) for r in rows]
            row = {"prompt": t.text, "scale": 1.0, "value": 2.0, "continuation": t.text}
            html = page(t.text, [tokens_html(toks), token_html(t.text), steering_html([row])])
            html.encode("utf-8")  # writable as UTF-8
            assert not RAW_INVISIBLE.search(html.replace("\n", "")), repr(t.text)
    assert outcomes["ok"] >= 5, outcomes
    if suffix != ".parquet":
        assert outcomes["refused"] >= 1, outcomes


def test_demo_assets_being_written_do_not_fail_a_cluster_jobs_start(tmp_path, monkeypatch):
    """Each SLURM job's snakemake reads the config again: one that starts while
    build_demo_assets is writing the demo's model and SAE directories (they exist, still empty)
    must not stop on them; they are the workflow's own outputs. The same half-written
    directories given as the user's own model and SAEs are refused, naming what is missing."""
    from conftest import _repo_paths

    monkeypatch.chdir(tmp_path)
    config = _repo_paths(yaml.safe_load((REPO / "config/demo.yaml").read_text("utf-8")))
    assets = Path(config["demo"]["dir"])
    for family in config["saes"].values():
        for layer in range(4):
            (Path(family["path"].format(layer=layer))).mkdir(parents=True, exist_ok=True)
    (assets / "model").mkdir(parents=True, exist_ok=True)
    schema = REPO / "workflow/schemas/config.schema.yaml"
    settings = startup_checks(config, schema)
    assert Path(settings.model.path) == assets / "model"

    own = {**config, "demo": {"dir": str(tmp_path / "elsewhere"), "seed": 0}}
    with pytest.raises((SAEError, UserError), match=r"is missing"):
        startup_checks(own, schema)
