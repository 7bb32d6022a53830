"""Probe texts (docs/surface.md, section 3): meaning without markers, markers without meaning.

A probe directory (``surface.probe_texts``) holds, per category, ``<category>/meaning.yaml``
(the category's content with its usual surface markers removed), ``<category>/markers.yaml``
(the markers inside unrelated prose) and ``<category>/marker_strings.yaml`` (the markers: a
string of ASCII letters (and ``_`` after the first) matches a whole word, any other string,
e.g. ``):``, ``+``, ``é`` or a digit, anywhere), plus
``neutral.yaml`` (everyday prose with no category's markers), each a YAML list of strings. A
category of the study without a directory gets the token measures only.

All sets are written into one text file (``probe.yaml``: one extraction job per SAE family for
every set) with an index (text_id, category, set, item). A probe text's value for a feature is
its largest activation over the text's counted positions (the analysis' per-text ``max``,
``analysis.pertext.per_text_values``, same BOS rule), not the mean: the probe texts differ in
length and hold a few markers each, and the question is whether the feature fires on them at
all, not how densely. Per specialist: how many texts of each set it fires on (value > the
analysis threshold) and the AUROC of its value on the meaning texts vs the neutral texts and on
the marker texts vs the neutral texts (scikit-learn ``roc_auc_score``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ..core.errors import UserError

if TYPE_CHECKING:  # the Snakefile imports this module: numpy and polars only in the jobs
    import numpy as np
    import polars as pl

SETS = ("meaning", "markers")
NEUTRAL = "neutral"
PROBE_CATEGORY = "probe"
WORD = re.compile(r"[A-Za-z][A-Za-z_]*")  # a marker matched as a whole word


def index_schema() -> dict:
    import polars as pl

    return {
        "text_id": pl.String,
        "category": pl.String,
        "set": pl.String,
        "item": pl.Int64,
        "text": pl.String,
    }


def probe_schema() -> dict:
    import polars as pl

    return {
        "sae": pl.String,
        "layer": pl.Int64,
        "category": pl.String,
        "feature": pl.Int64,
        **{
            f"{s}_{k}": t
            for s in SETS
            for k, t in (("n", pl.Int64), ("fired", pl.Int64), ("auroc", pl.Float64))
        },
        "neutral_n": pl.Int64,
        "neutral_fired": pl.Int64,
        "meaning_examples": pl.String,
        "markers_examples": pl.String,
    }


def _read_list(path: Path) -> list[str]:
    items = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(items, list) or not items or not all(isinstance(t, str) for t in items):
        raise UserError(
            f"surface.probe_texts: {path} must be a non-empty YAML list of strings (one "
            "'- text' item per text). Fix the file, or remove its category directory."
        )
    return items


def probe_files(directory: str | Path, categories) -> dict[str, dict[str, Path]]:
    """category -> {"meaning": path, "markers": path} for the study's categories that have a
    probe directory with sets, plus "neutral" -> {"neutral": path}; {} when no category has
    sets (a directory of marker strings only). Missing files are a clear error."""
    directory = Path(directory)
    neutral = directory / f"{NEUTRAL}.yaml"
    if not neutral.is_file():
        raise UserError(
            f"surface.probe_texts: {directory} has no {NEUTRAL}.yaml (everyday prose with no "
            "category's markers, the baseline of every AUROC). Add it (see resources/"
            "probe_texts/), or set surface.probe_texts: null."
        )
    out: dict[str, dict[str, Path]] = {}
    for category in sorted(categories):
        folder = directory / category
        if not folder.is_dir():
            continue
        files = {s: folder / f"{s}.yaml" for s in SETS}
        missing = [str(p) for p in files.values() if not p.is_file()]
        if len(missing) == len(files):
            continue  # marker strings only (a topic x form design's form): no probe sets
        if missing:
            raise UserError(
                f"surface.probe_texts: {', '.join(missing)} missing. A category's probe "
                "directory holds meaning.yaml and markers.yaml (and marker_strings.yaml); add "
                f"them or remove {folder}."
            )
        out[category] = files
    if not out:
        return {}  # no category has probe sets (e.g. marker strings only): nothing to extract
    out[NEUTRAL] = {NEUTRAL: neutral}
    return out


def form_markers(directory: str | Path | None, categories) -> dict[str, list[str]]:
    """category -> its marker strings (``<directory>/<category>/marker_strings.yaml``), for the
    categories that have them (none without a directory)."""
    if directory is None:
        return {}
    out = {}
    for category in categories:
        path = Path(directory) / category / "marker_strings.yaml"
        if path.is_file():
            out[category] = _read_list(path)
    return out


def probe_items(files: Mapping[str, Mapping[str, Path]]) -> list[tuple[str, str, int, str]]:
    """(category, set, item, text) of every probe text, in file order."""
    return [
        (category, name, i, text)
        for category, sets in files.items()
        for name, path in sets.items()
        for i, text in enumerate(_read_list(Path(path)))
    ]


def n_probe_texts(files: Mapping[str, Mapping[str, Path]]) -> int:
    return len(probe_items(files))


def marker_hits(text: str, markers) -> list[str]:
    """The marker strings that occur in ``text`` (a word marker as a whole word)."""
    found = []
    for m in markers:
        key = m.strip() or m
        if WORD.fullmatch(key):
            hit = re.search(r"(?<!\w)" + re.escape(key) + r"(?!\w)", text) is not None
        else:
            hit = key in text
        if hit:
            found.append(m)
    return found


def write_probe_texts(files, yaml_path: str, index_path: str) -> pl.DataFrame:
    """The one text file of every probe text and its index (text ids as the extraction gives
    them: ``extraction.texts.load_yaml_category`` of that file)."""
    import polars as pl

    from ..core.io import write_parquet, write_text
    from ..extraction.texts import load_yaml_category

    items = probe_items(files)
    write_text(yaml.safe_dump([t for *_, t in items], allow_unicode=True, width=1000), yaml_path)
    ids = [t.text_id for t in load_yaml_category(yaml_path, PROBE_CATEGORY)]
    index = pl.DataFrame(
        {
            "text_id": ids,
            "category": [c for c, *_ in items],
            "set": [s for _, s, *_ in items],
            "item": [i for _, _, i, _ in items],
            "text": [t for *_, t in items],
        },
        schema=index_schema(),
    )
    write_parquet(index, index_path)
    return index


def _auroc(pos: np.ndarray, neg: np.ndarray) -> float | None:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    if not len(pos) or not len(neg):
        return None
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    return float(roc_auc_score(y, np.r_[pos, neg]))


def _examples(texts: list[str], values: np.ndarray, k: int = 2) -> str:
    """The ``k`` texts with the largest values, each with its value (JSON-free: ' || ')."""
    import numpy as np

    order = np.lexsort((np.arange(len(values)), -values))[:k]
    return " || ".join(f"{values[i]:.2f}: {texts[i]}" for i in order)


def probe_row(
    key: dict, category: str, values: np.ndarray, index: pl.DataFrame, threshold: float
) -> dict | None:
    """The probe measures of one specialist (``values``: its per-text value on every probe
    text, in ``index`` order); None when its category has no probe sets."""
    sets = index["set"].to_numpy()
    cats = index["category"].to_numpy()
    texts = index["text"].to_list()
    neutral = values[sets == NEUTRAL]
    row = dict(**key, neutral_n=int(len(neutral)), neutral_fired=int((neutral > threshold).sum()))
    for name in SETS:
        at = (cats == category) & (sets == name)
        if not at.any():
            return None
        v = values[at]
        row[f"{name}_n"] = int(at.sum())
        row[f"{name}_fired"] = int((v > threshold).sum())
        row[f"{name}_auroc"] = _auroc(v, neutral)
        row[f"{name}_examples"] = _examples([t for t, a in zip(texts, at, strict=True) if a], v)
    return row


def probe_table(
    specialists: pl.DataFrame, per_text: pl.DataFrame, index: pl.DataFrame, threshold: float
) -> pl.DataFrame:
    """Probe measures of every specialist of ``specialists`` (sae, layer, category, feature)
    whose category has probe sets; ``per_text``: the probe texts' per-text values (sae, layer,
    text_id, feature, value)."""
    import numpy as np
    import polars as pl

    rows = []
    position = {t: i for i, t in enumerate(index["text_id"].to_list())}
    for r in specialists.iter_rows(named=True):
        part = per_text.filter(
            (pl.col("sae") == r["sae"])
            & (pl.col("layer") == r["layer"])
            & (pl.col("feature") == r["feature"])
        )
        values = np.zeros(index.height)
        for tid, value in part.select("text_id", "value").iter_rows():
            if tid in position:
                values[position[tid]] = value
        key = {k: r[k] for k in ("sae", "layer", "category", "feature")}
        row = probe_row(key, r["category"], values, index, threshold)
        if row is not None:
            rows.append(row)
    if not rows:
        return pl.DataFrame(schema=probe_schema())
    return pl.DataFrame(rows, schema=probe_schema())
