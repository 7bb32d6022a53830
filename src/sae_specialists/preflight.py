"""Integrity checks that run when the Snakefile is parsed, before any job (startup.py calls them).

- config files and the merged config: alias bombs refused before anything walks them;
- ``--config`` overrides: Snakemake hands nested values over as strings (``analysis={threshold:
  3}`` arrives as ``{'threshold': '3'}``, ``layers=[1]`` as ``['1']``); where the schema expects
  a number, boolean, list or object, the string is read as YAML;
- numbers: finite everywhere, and a whole number where the schema says integer (``1.0`` would
  name a path ``layer=1.0``);
- every configured input path exists (unless this workflow builds it: the demo assets), so a
  run never reports old results for a model, SAE or corpus that is not there;
- ``results_dir`` is, or can become, a directory;
- a local SAE reads a hook in the block of the layer it is configured for (plus the family's
  ``hook_layer_offset``), so no SAE's numbers are reported under another layer's name.

Every failure is one ``ConfigError``/``SAEError`` line naming the key, the path and the fix.
Nothing here imports torch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from .core.errors import ConfigError, SAEError
from .core.safeyaml import check_expansion, load_yaml

CONFIG_FIX = "Write the configuration out without nested aliases."


# -- config files and objects -------------------------------------------------------------------


def check_config_files(paths: Iterable[str | os.PathLike]) -> None:
    """Parse each config file with the bounded YAML loader: a bomb or a recursive alias is
    reported with the file's name (Snakemake itself loads the files; it does not expand list
    aliases, but everything after it would)."""
    for path in paths:
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError:
            continue  # Snakemake reports a missing config file itself
        try:
            load_yaml(raw, f"config file {path}", CONFIG_FIX)
        except yaml.YAMLError:
            continue  # Snakemake reports syntax errors itself (it read the file first)


def check_config_object(config: Mapping) -> None:
    """The config as Snakemake merged it (files + --config): bounded before validation."""
    check_expansion(dict(config), "config (config files + --config)", CONFIG_FIX)


# -- schema-guided walking ----------------------------------------------------------------------


def _options(schema: Mapping | None) -> list[Mapping]:
    """``schema`` and the alternatives it allows (oneOf/anyOf), flattened."""
    if not isinstance(schema, Mapping):
        return []
    out = [schema]
    for key in ("oneOf", "anyOf"):
        for sub in schema.get(key, []):
            out += _options(sub)
    return out


def _child(schemas: list[Mapping], key) -> list[Mapping]:
    out: list[Mapping] = []
    for schema in schemas:
        if isinstance(key, int):
            items = schema.get("items")
            out += _options(items)
        else:
            props = schema.get("properties", {})
            if key in props:
                out += _options(props[key])
            elif isinstance(schema.get("additionalProperties"), Mapping):
                out += _options(schema["additionalProperties"])
    return out


def _types(schemas: list[Mapping]) -> set[str]:
    types: set[str] = set()
    for schema in schemas:
        kind = schema.get("type")
        if isinstance(kind, str):
            types.add(kind)
        elif isinstance(kind, list):
            types.update(kind)
    return types


def _key(path: tuple) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in path]
    return "".join(parts).lstrip(".") or "(top level)"


def _walk(value, schemas: list[Mapping], path: tuple = ()):
    """(key path, value, applicable schemas) for every value in the config."""
    yield path, value, schemas
    if isinstance(value, Mapping):
        for key, sub in value.items():
            yield from _walk(sub, _child(schemas, key), (*path, key))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            yield from _walk(sub, _child(schemas, index), (*path, index))


def load_schema(schema_path: str | os.PathLike) -> dict:
    return load_yaml(Path(schema_path).read_text(), schema_path)


# -- --config overrides -------------------------------------------------------------------------

_PY_TYPES = {
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def _coerce(value, schemas: list[Mapping], path: tuple):
    """``value`` (from --config) with strings read as YAML where the schema wants no string."""
    types = _types(schemas)
    if isinstance(value, str):
        if not types or "string" in types:
            return value
        parsed = _override_yaml(value, path)
        wanted = tuple(t for kind in types for t in _PY_TYPES.get(kind, ()))
        if isinstance(parsed, wanted) and not (isinstance(parsed, bool) and "boolean" not in types):
            return _coerce(parsed, schemas, path) if isinstance(parsed, (list, dict)) else parsed
        return value  # left as given: validation names the key and the type it needs
    if isinstance(value, dict):
        return {k: _coerce(v, _child(schemas, k), (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_coerce(v, _child(schemas, i), (*path, i)) for i, v in enumerate(value)]
    return value


def _override_yaml(value: str, path: tuple):
    """A --config value read as YAML; invalid YAML is a ConfigError naming the key."""
    try:
        return load_yaml(value, f"--config {_key(path)}", "Write the value out.")
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        hint = (
            " A '{layer}' inside a value must be quoted: path: 'saes/res/layer{layer}'."
            if "{layer}" in value
            else ""
        )
        raise ConfigError(
            f"--config {_key(path)}: {value!r} is not valid YAML ({problem}).{hint} Close "
            "every bracket and quote the whole KEY=VALUE for the shell, e.g. --config "
            "'analysis={threshold: 3}' (docs/configuration.md)."
        ) from None


def apply_overrides(config: Mapping, overrides: Mapping | None, schema: Mapping) -> dict:
    """``config`` with the values given by ``--config`` read as the schema expects them.

    Snakemake reads ``--config KEY=VALUE`` as int, float or bool, else with YAML's BaseLoader,
    which leaves every nested scalar a string; it then merges the result into the config
    (mappings key by key). Only the keys given on the command line are coerced, so a quoted
    number in a config file is still reported."""
    config = dict(config)
    if not overrides:
        return config

    def merge(target: dict, given: Mapping, schemas: list[Mapping], path: tuple) -> None:
        for key, value in given.items():
            sub = _child(schemas, key)
            if isinstance(value, Mapping) and isinstance(target.get(key), dict):
                target[key] = dict(target[key])
                merge(target[key], value, sub, (*path, key))
            elif key in target:
                target[key] = _coerce(target[key], sub, (*path, key))

    merge(config, overrides, _options(schema), ())
    return config


# -- numbers ------------------------------------------------------------------------------------


def check_numbers(config: Mapping, schema: Mapping) -> None:
    """Every number finite; a whole number where the schema asks for an integer."""
    problems = []
    for path, value, schemas in _walk(config, _options(schema)):
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{_key(path)}: {value} is not a finite number; give a number")
        elif isinstance(value, float):
            types = _types(schemas)
            if "integer" in types and "number" not in types:
                hint = f" (write {int(value)})" if value.is_integer() else ""
                problems.append(f"{_key(path)}: {value!r} is not an integer{hint}")
    if problems:
        raise ConfigError(
            f"invalid configuration: {'; '.join(problems)}. Fix these keys (each is described in "
            "config/README.md)."
        )


# -- paths --------------------------------------------------------------------------------------


def check_results_dir(results_dir: str | os.PathLike) -> None:
    """``results_dir`` is a directory, or the place for a new one (its nearest existing
    ancestor is a writable directory)."""
    path = Path(results_dir)
    probe = path
    while not probe.exists() and not probe.is_symlink() and probe != probe.parent:
        probe = probe.parent
    if probe.is_symlink() and not probe.exists():
        what = f"{probe} is a broken symbolic link (to {str(probe.readlink())!r})"
    elif probe.exists() and not probe.is_dir():
        what = f"{probe} is a file, not a directory"
    elif probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        what = f"{probe} is not writable"
    else:
        return
    raise ConfigError(
        f"config: results_dir = {str(results_dir)!r}: {what}. Set results_dir to a directory "
        "(it is created if missing), or move the file away."
    )


def built_by_workflow(path: str | os.PathLike, demo: Mapping | None) -> bool:
    """Inputs the workflow builds itself: the demo assets (demo.smk) under demo.dir."""
    if not demo or not demo.get("dir"):
        return False
    root = Path(demo["dir"]).absolute()
    path = Path(path).absolute()
    return path == root or root in path.parents


def configured_inputs(settings) -> list[tuple[str, Path, str]]:
    """(config key, path, what it must be) of every input path in the configuration."""
    inputs = []
    if settings.model.path is not None:
        inputs.append(("model.path", Path(settings.model.path), "a local model directory"))
    for (family, layer), source in settings.sae_sources().items():
        if "path" in source:
            key = f"saes.{family}.path (layer {layer})"
            inputs.append((key, Path(source["path"]), "a local SAE directory"))
    if isinstance(settings.texts, Mapping):  # {category: file | dataset spec (datasets.py)}
        for category, source in settings.texts.items():
            if isinstance(source, Path):
                inputs.append((f"texts.{category}", source, "a category file"))
    else:
        inputs.append(("texts", Path(settings.texts), "a directory of category files"))
    corpus = getattr(settings.dashboards, "corpus", None)
    if corpus:
        inputs.append(("dashboards.corpus", Path(corpus), "a .txt, .jsonl or .parquet file"))
    return inputs


def check_inputs_exist(settings) -> None:
    """Every configured input exists (unless the workflow builds it): a missing model, SAE or
    corpus fails here instead of leaving old results in place as if they were current."""
    for key, path, what in configured_inputs(settings):
        if built_by_workflow(path, settings.demo):
            continue
        if path.is_symlink() and not path.exists():
            problem = f"is a broken symbolic link (to {str(path.readlink())!r})"
        elif not path.exists():
            problem = "does not exist"
        elif what.startswith("a local") or what.startswith("a directory"):
            problem = "" if path.is_dir() else "is not a directory"
        else:
            problem = "" if path.is_file() else "is not a file"
        if problem:
            raise ConfigError(
                f"config: {key} = {str(path)!r} {problem} (relative paths start at "
                f"{os.getcwd()}). Point {key.split(' ')[0]} at {what} (docs/configuration.md)."
            )


# -- inputs checked once: a stat-keyed record of what passed -------------------------------------

CHECKED_FILES = ".snakemake/sae_specialists/checked_inputs.json"


class CheckedFiles:
    """Which input files passed which start check, keyed by path + stat (size, mtime, ctime,
    inode, device: core/checksums.py), so a check that reads a file whole (SAE weights, a
    large corpus) runs once per version of the file and a no-op rerun costs a stat per file.
    Only passes are recorded: a failing file fails again on the next run."""

    def __init__(self, cache_file: str | os.PathLike | None = CHECKED_FILES):
        from .core.checksums import DigestCache

        self._cache = DigestCache(cache_file)  # its JSON file and atomic save; not its digests

    def _key(self, files: Iterable[str | os.PathLike], tag: str) -> tuple[str, list] | None:
        from .core.checksums import _stat_key

        paths = sorted(os.path.abspath(f) for f in files)
        try:
            stats = [_stat_key(os.stat(p)) for p in paths]
        except OSError:
            return None
        return f"{tag}\x1f" + "\x1f".join(paths), stats

    def passed(self, files: Iterable[str | os.PathLike], tag: str) -> bool:
        key = self._key(files, tag)
        return key is not None and self._cache._entries.get(key[0]) == [key[1], "ok"]

    def record(self, files: Iterable[str | os.PathLike], tag: str) -> None:
        key = self._key(files, tag)
        if key is not None:
            self._cache._entries[key[0]] = [key[1], "ok"]
            self._cache._dirty = True

    def save(self) -> None:
        self._cache.save()


# -- text files: every category file and the reference corpus, streamed ------------------------

TEXT_CHECK = "texts/1"  # bump when the readers check more


def check_text_files(settings, categories: Mapping[str, Path], checked: CheckedFiles) -> None:
    """Every non-YAML category file read through (``corpus.scan_texts``: decodable UTF-8, valid
    JSON lines, strings, no lone surrogates), every file of the validation test set
    (``validation.test_texts``), and the reference corpus's first ``corpus_max_texts`` texts:
    a problem fails here, not minutes into its extraction job. YAML category files are parsed by
    ``startup.text_warnings``. A 10 GB JSONL costs one streamed scan, once per version of the
    file (``checked``)."""
    from .extraction.corpus import CORPUS_SUFFIXES, CorpusOptions, scan_texts
    from .extraction.texts import list_categories, load_yaml_category

    ext = settings.extraction
    options = CorpusOptions(ext.text_field, ext.text_split)
    for path in categories.values():
        if path.suffix.lower() in CORPUS_SUFFIXES:
            _scan_once(path, options, None, checked, scan_texts)
    test_texts = settings.validation.test_texts if settings.validation.enabled else None
    if test_texts and Path(test_texts).is_dir():  # the held-out test set: read like categories
        for category, path in list_categories(test_texts).items():
            if path.suffix.lower() in CORPUS_SUFFIXES:
                _scan_once(path, options, None, checked, scan_texts)
            else:
                load_yaml_category(path, category)
    dash = settings.dashboards
    corpus = getattr(dash, "corpus", None)
    if corpus and Path(corpus).is_file() and not built_by_workflow(corpus, settings.demo):
        corpus_options = CorpusOptions(dash.corpus_text_field, ext.text_split)
        _scan_once(Path(corpus), corpus_options, dash.corpus_max_texts, checked, scan_texts)


def _scan_once(path: Path, options, stop, checked: CheckedFiles, scan) -> None:
    tag = f"{TEXT_CHECK}:{options.text_field}:{options.text_split}:{stop}"
    if checked.passed([path], tag):
        return
    scan(path, options, stop)
    checked.record([path], tag)


# -- SAE hooks and layers -----------------------------------------------------------------------


def check_local_sae_hooks(settings) -> None:
    """Each local SAE reads a hook in the block of its configured layer (+ the family's
    hook_layer_offset); SAELens releases are checked when the extraction job loads them."""
    from .extraction.saes import hook_layer_problem, read_sae_cfg, sae_hook_name

    for (family, layer), source in settings.sae_sources().items():
        if "path" not in source:
            continue  # SAELens releases: checked by the extraction job when it loads them
        cfg_file = Path(source["path"]) / "cfg.json"
        if not cfg_file.is_file() or built_by_workflow(cfg_file, settings.demo):
            continue  # built by a rule (demo), or reported as missing by check_inputs_exist
        cfg = read_sae_cfg(cfg_file.parent, f"config: saes.{family} layer {layer}")
        hook = sae_hook_name(cfg)
        if not hook:
            continue  # reported by startup.check_local_saes
        where = f"config: saes.{family} layer {layer} ({source['path']})"
        problem = hook_layer_problem(family, layer, hook, source.get("block", layer), where)
        if problem:
            raise SAEError(problem)


# -- texts directory ----------------------------------------------------------------------------


def texts_dir_warnings(texts_dir: str | os.PathLike) -> list[str]:
    """Files in the texts directory that are not read (not a category file format)."""
    from .extraction.texts import CATEGORY_FILE_SUFFIXES, ignored_files

    ignored = ignored_files(texts_dir)
    if not ignored:
        return []
    names = ", ".join(p.name for p in ignored[:10]) + (" ..." if len(ignored) > 10 else "")
    return [
        f"texts: {len(ignored)} file(s) in {texts_dir} are not category files and are ignored: "
        f"{names}. Only {', '.join('*' + s for s in CATEGORY_FILE_SUFFIXES)} files are "
        "categories; rename or move the others."
    ]


def main(argv: list[str] | None = None) -> int:
    """``python -m sae_specialists.preflight CONFIG.yaml ...``: check config files for alias
    bombs before handing them to ``snakemake --configfile`` (Snakemake merges a --configfile's
    mappings before the workflow's own checks run; docs/troubleshooting.md)."""
    import sys

    from .core.errors import UserError

    paths = sys.argv[1:] if argv is None else argv
    try:
        check_config_files(paths)
    except UserError as err:
        print(err, file=sys.stderr)
        return 1
    print(f"ok: {', '.join(paths)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
