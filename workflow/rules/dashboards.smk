# Feature dashboards (docs/dashboards.md): per SAE family and layer, one self-contained page per
# specialist and per top strongest / most frequent feature, plus {R}/dashboards/index.html.
# Only `logit_effects` (model once per layer job + one SAE) and `dashboard_corpus` (optional
# reference corpus) load the model; the dashboard rules read Parquet only.
from sae_specialists.analysis.paths import AnalysisPaths
from sae_specialists.dashboards.settings import dashboard_settings
from sae_specialists.models import model_input_files
from sae_specialists.saes import sae_input_files

_DB = dashboard_settings(config)
_AP = AnalysisPaths.of(R, FAMILIES, LAYERS, CATEGORIES)  # the analysis outputs read here
LOGITS_DIR = f"{R}/logits"
DASHBOARDS_DIR = f"{R}/dashboards"
CORPUS_DIR = f"{R}/corpus"


def logits_file(family, layer):
    return f"{LOGITS_DIR}/sae={family}/layer={layer}.parquet"


def dashboard_dir(family, layer):
    return f"{DASHBOARDS_DIR}/sae={family}/layer={layer}"


def corpus_tokens():
    return f"{CORPUS_DIR}/tokens.parquet"


def corpus_activations(family, layer):
    return f"{CORPUS_DIR}/activations/sae={family}/layer={layer}.parquet"


def dashboard_outputs():
    """Every final output of the dashboards stage (used by `rule all` and `rule dashboards`)."""
    return [f"{DASHBOARDS_DIR}/index.html"] + [
        dashboard_dir(f, l) for f in FAMILIES for l in LAYERS
    ]


def _flat(per_category):
    """Shard paths of several categories as one flat list (a category gives one path or a
    list of them, one per extraction chunk)."""
    return [p for item in per_category for p in ([item] if isinstance(item, str) else item)]


def _model_and_sae_files(families, layers):
    files = model_input_files(SETTINGS.model)
    for name in families:
        for layer in layers:
            files += sae_input_files(SETTINGS.saes[name].source(int(layer)))
    return files


rule dashboards:
    """Build every feature dashboard (needs the analysis tables and the logit effects)."""
    input:
        dashboard_outputs(),


rule logit_effects:
    input:
        lambda w: _model_and_sae_files([w.family], [w.layer]),
    output:
        logits_file("{family}", "{layer}"),
    params:
        model=SETTINGS.model,
        sae=lambda w: config["saes"][w.family],
        dtype=SETTINGS.dtype,
        top=_DB["logit_top"],
    log:
        f"{R}/logs/dashboards/logits_sae={{family}}_layer={{layer}}.log",
    threads: 2
    resources:
        mem_mb=8000,
        runtime=30,
        gpu=1 if SETTINGS.device == "cuda" else 0,
    script:
        "../../scripts/logit_effects.py"


if _DB["corpus"]:

    rule dashboard_corpus:
        input:
            [_DB["corpus"]] + _model_and_sae_files(FAMILIES, LAYERS),
        output:
            tokens=corpus_tokens(),
            activations=[corpus_activations(f, l) for f in FAMILIES for l in LAYERS],
        params:
            model=SETTINGS.model,
            saes={name: config["saes"][name] for name in FAMILIES},
            layers=LAYERS,
            dtype=SETTINGS.dtype,
            text_field=_DB["corpus_text_field"],
            text_split=SETTINGS.extraction.get("text_split"),
            max_texts=_DB["corpus_max_texts"],
            max_tokens=_DB["corpus_max_tokens"],
        log:
            f"{R}/logs/dashboards/corpus.log",
        threads: 2
        resources:
            mem_mb=8000,
            runtime=240,
            gpu=1 if SETTINGS.device == "cuda" else 0,
        script:
            "../../scripts/dashboard_corpus.py"


def _dashboard_layer_inputs(w):
    files = dict(
        tokens=_flat(tokens_shard(c) for c in CATEGORIES),
        activations=_flat(activation_shard(w.family, w.layer, c) for c in CATEGORIES),
        per_text=_AP.per_text(w.family, w.layer),
        texts=_AP.texts,
        specialists=_AP.table("specialists"),
        strongest=_AP.table("strongest"),
        frequent=_AP.table("frequent"),
        logits=logits_file(w.family, w.layer),
    )
    if _DB["corpus"]:
        files["corpus_tokens"] = corpus_tokens()
        files["corpus_activations"] = corpus_activations(w.family, w.layer)
    return files


rule dashboards_layer:
    input:
        unpack(_dashboard_layer_inputs),
    output:
        report(
            directory(dashboard_dir("{family}", "{layer}")),
            patterns=["feature={feature}.html"],  # each page is self-contained
            caption="../report/dashboards.rst",
            category="Feature dashboards",
            subcategory="SAE {family}, layer {layer}",
            labels={"feature": "{feature}", "SAE": "{family}", "layer": "{layer}"},
        ),
    params:
        settings={k: v for k, v in _DB.items() if not k.startswith("corpus") and k != "logit_top"},
        corpus=bool(_DB["corpus"]),
        include_bos=SETTINGS.analysis["include_bos"],
        threshold=SETTINGS.analysis["threshold"],
        aggregation=SETTINGS.analysis["aggregation"],
        token_views_dir=_AP.views_dir,
        index=f"{DASHBOARDS_DIR}/index.html",
    log:
        f"{R}/logs/dashboards/dashboards_sae={{family}}_layer={{layer}}.log",
    resources:
        mem_mb=4000,
        runtime=20,
    script:
        "../../scripts/dashboard_layer.py"


rule dashboards_index:
    input:
        dirs=[dashboard_dir(f, l) for f in FAMILIES for l in LAYERS],
    output:
        f"{DASHBOARDS_DIR}/index.html",
    params:
        settings={"top_k_features": _DB["top_k_features"], "corpus": _DB["corpus"]},
    log:
        f"{R}/logs/dashboards/index.log",
    resources:
        mem_mb=2000,
        runtime=5,
    script:
        "../../scripts/dashboard_index.py"
