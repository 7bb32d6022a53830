# Validation (docs/validation.md): does a specialist hold on texts it was not chosen on, beat
# chance, and beat simple baselines? Off the main path: no extraction or analysis rule depends
# on these outputs; `rule all` builds them when `validation.enabled` is true.
# - validation_heldout and validation_null (one job each, every family and layer: a threshold
#   change reruns two short jobs) read only the per-text tables and the text list: no model, no
#   pooled residuals. So with `validation.baselines: false`, or with shards made elsewhere,
#   held-out, null and verdicts run.
# - validation_baselines (one job per family and layer) adds the pooled-residual shards. A layer
#   whose activation shards exist without pooled-residual shards (extracted elsewhere or before
#   they existed) gets no baselines (a warning says how to add them) instead of a re-extraction.
# - validation.* settings are params of these rules only: changing one never reruns extraction
#   or analysis. Each rule takes exactly the settings it uses (`permutations` reruns the null
#   jobs and the verdicts, not the held-out jobs; max_dense_gb changes no result: unchecked).
from pathlib import Path

from snakemake.logging import logger

from sae_specialists.core.errors import ConfigError
from sae_specialists.extraction.corpus import chunk_counts  # the test set's chunks
from sae_specialists.validation.workflow import (
    baseline_layers,
    check_test_categories,
    read_verdicts,
    skipped_message,
    validated_layers,
)

V = S.validation
V_TEST = V.test_texts is not None


# the families validated (validation.families; null: all) at their layers
V_FAMILIES = [f for f in FAMILIES if V.families is None or f in V.families]
V_LAYERS = validated_layers(L, V.families)
# layers whose shards lack pooled residuals (made elsewhere) get no baselines, with a warning
BASELINE_LAYERS, SKIPPED_BASELINES = baseline_layers(L, V.baselines, V.families)
if SKIPPED_BASELINES:
    logger.warning(skipped_message(SKIPPED_BASELINES))


rule validation:
    """Every validation output, whether or not validation.enabled is set."""
    input:
        validation_needs,
        L.validation_outputs(V.baselines, V_TEST, V_FAMILIES),
        L.learning_curve_outputs(V_FAMILIES) if V.learning_curve_enabled else [],


rule validation_heldout:
    """Held-out selection (the study's rule on each fold's training texts, the chosen feature
    judged on the held-out texts) and the random-feature floor, every SAE family and layer.
    """
    input:
        per_text=[L.per_text(f, l) for f, l in V_LAYERS],
        texts=L.texts,
    output:
        folds=L.validation_part("heldout", "folds"),
        cells=L.validation_part("heldout", "cells"),
    log:
        L.log("validation", "heldout"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        threshold=S.analysis.threshold,
        candidates=S.analysis.candidates,
        folds=V.folds,
        seed=V.seed,
        random_feature_draws=V.random_feature_draws,
        density_tolerance=V.density_tolerance,
        max_dense_gb=unchecked(V.max_dense_gb),
    script:
        "../../scripts/validation_heldout.py"


rule validation_null:
    """Shuffled-label null, every SAE family and layer (each permutation reruns the selection)."""
    input:
        per_text=[L.per_text(f, l) for f, l in V_LAYERS],
        texts=L.texts,
    output:
        null=L.validation_part("null", "null"),
        cells=L.validation_part("null", "cells"),
    log:
        L.log("validation", "null"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        threshold=S.analysis.threshold,
        candidates=S.analysis.candidates,
        permutations=V.permutations,
        seed=V.seed,
        max_dense_gb=unchecked(V.max_dense_gb),
    script:
        "../../scripts/validation_null.py"


rule validation_baselines:
    """Difference of means, dense probe (pooled residual) and k-sparse SAE probes of one SAE
    family and layer, on the held-out folds of every category."""
    input:
        per_text=L.per_text("{family}", "{layer}"),
        texts=L.texts,
        pooled=lambda w: L.pooled(w.family, w.layer),
    output:
        L.validation_layer("baselines", "{family}", "{layer}", "baselines"),
    log:
        L.log("validation", "baselines_sae={family}_layer={layer}"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        folds=V.folds,
        seed=V.seed,
        probe_k=list(V.probe_k),
        include_bos=S.analysis.include_bos,
        max_dense_gb=unchecked(V.max_dense_gb),
    script:
        "../../scripts/validation_baselines.py"


checkpoint validation_verdicts:
    """The cell table with the baselines and the verdict of every cell, the folds and baselines
    tables, and verdicts.json: what the report and the dashboards show.
    They take it as an `ancient` input (its time stamp ignored) and its content as a param
    (read_verdicts), so they rerun only when a verdict they show changed."""
    input:
        heldout=L.validation_part("heldout", "cells"),
        null=L.validation_part("null", "cells"),
        folds=L.validation_part("heldout", "folds"),
        baselines=[
            L.validation_layer("baselines", f, l, "baselines")
            for f, l in BASELINE_LAYERS
        ],
    output:
        **L.validation_pair("cells"),
        **L.validation_pair("folds"),
        **(L.validation_pair("baselines") if V.baselines else {}),
        verdicts=L.validation_verdicts,
        # the findings board's records (core/verdicts.py, report/findings.py)
        board=L.verdicts("validation"),
    log:
        L.log("validation", "verdicts"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        baselines=V.baselines,
        alpha=V.alpha,
        min_auroc=V.min_auroc,
        probe_margin=V.probe_margin,
        # the k-sparse probe named in the verdict text: k = 5 when computed, else the largest
        shown_k=[5 if 5 in V.probe_k else max(V.probe_k)] if V.baselines else [],
    script:
        "../../scripts/validation_verdicts.py"


rule validation_summary:
    """validation/summary.md and its page: every cell with its verdict and, when the surface
    stage ran, what its specialist detects linked to surface/summary.md. A job of its own:
    the verdicts (read by `snakemake analysis`) never wait for the surface stage, whose probe
    texts are extracted with the model."""
    input:
        cells=L.validation_table("cells"),
        # the learning curve's sentences end summary.md (validation_learning_curve)
        learning_curve=(
            [L.learning_curve("summary", "md")] if V.learning_curve_enabled else []
        ),
        surface=[L.verdicts("surface")] if S.surface.enabled else [],
    output:
        summary=L.validation_summary,
        summary_html=report(
            L.validation_summary_html,
            caption="../report/validation_summary.rst",
            category="Validation",
        ),
    log:
        L.log("validation", "summary"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        surface_summary=L.surface_summary,  # linked, by path
        summary=dict(
            threshold=S.analysis.threshold,
            candidates=S.analysis.candidates,
            folds=V.folds,
            seed=V.seed,
            permutations=V.permutations,
            random_feature_draws=V.random_feature_draws,
            baselines=V.baselines,
            alpha=V.alpha,
            min_auroc=V.min_auroc,
            probe_margin=V.probe_margin,
        ),
    script:
        "../../scripts/validation_summary.py"


if V.learning_curve_enabled:

    rule validation_learning_curve:
        """How many texts a finding needs: every cell validated again with n texts per
        category (validation/learning_curve.py): tables, the summary's last section, the
        findings board's records and one chart per family. The top rung (every text) is the
        stage's own cell: read from the held-out and null jobs' cell tables, not recomputed.
        """
        input:
            chart_script=L.chart_script,
            per_text=[L.per_text(f, l) for f, l in V_LAYERS],
            texts=L.texts,
            heldout=L.validation_part("heldout", "cells"),
            null=L.validation_part("null", "cells"),
        output:
            draws=L.learning_curve("draws"),
            rungs=L.learning_curve("rungs"),
            rungs_csv=L.learning_curve("rungs", "csv"),
            cells=L.learning_curve("cells"),
            cells_csv=L.learning_curve("cells", "csv"),
            verdicts=L.learning_curve("verdicts"),
            summary=L.learning_curve("summary", "md"),
            chart_html=[L.learning_curve_chart(f, "html") for f in V_FAMILIES],
            chart_png=report(
                [L.learning_curve_chart(f, "png") for f in V_FAMILIES],
                caption="../report/learning_curve.rst",
                category="Validation",
            ),
        log:
            L.log("validation", "learning_curve"),
        conda:
            "../envs/sae_specialists.yaml"
        resources:
            mem_mb=2000,
            runtime=30,
        params:
            ladder=list(V.learning_curve_ladder),
            draws=V.learning_curve_draws,
            permutations=V.learning_curve_permutations,
            pass_share=V.learning_curve_pass_share,
            folds=V.folds,
            seed=V.seed,
            threshold=S.analysis.threshold,
            candidates=S.analysis.candidates,
            alpha=V.alpha,
            min_auroc=V.min_auroc,
            families=V_FAMILIES,  # the family of each chart, in output order
            max_dense_gb=unchecked(V.max_dense_gb),
        script:
            "../../scripts/validation_learning_curve.py"


rule validation_charts:
    """Per SAE family: held-out AUROC by layer vs baselines, the null with the real score, and
    the specialist-score heatmap with the cells that fail validation marked."""
    input:
        chart_script=L.chart_script,
        cells=L.validation_table("cells"),
        null=L.validation_part("null", "null"),
        specialists=L.table("specialists"),
    output:
        heldout_html=[
            L.validation_chart("heldout_auroc", f, "html") for f in V_FAMILIES
        ],
        heldout_png=report(
            [L.validation_chart("heldout_auroc", f, "png") for f in V_FAMILIES],
            caption="../report/validation_heldout.rst",
            category="Validation",
        ),
        null_html=[L.validation_chart("null", f, "html") for f in V_FAMILIES],
        null_png=report(
            [L.validation_chart("null", f, "png") for f in V_FAMILIES],
            caption="../report/validation_null.rst",
            category="Validation",
        ),
        heatmap_html=[
            L.validation_chart("specialist_scores", f, "html") for f in V_FAMILIES
        ],
        heatmap_png=report(
            [L.validation_chart("specialist_scores", f, "png") for f in V_FAMILIES],
            caption="../report/validation_heatmap.rst",
            category="Validation",
        ),
    log:
        L.log("validation", "charts"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        families=V_FAMILIES,  # the family of each chart, in output order
    script:
        "../../scripts/validation_charts.py"


if V_TEST:
    # The optional test set: its texts are extracted by the extraction rule itself and reduced
    # to per-text tables by the analysis rules, into their own tree (validation/test_set/).
    TEST_CATEGORIES = list_categories(Path(V.test_texts))
    check_test_categories(V.test_texts, TEST_CATEGORIES, CATEGORIES)
    TEST_CHUNKS = chunk_counts(
        TEST_CATEGORIES,
        S.extraction.chunk_size,
        CorpusOptions(S.extraction.text_field, S.extraction.text_split),
    )
    LT = L.test_set(TEST_CATEGORIES, TEST_CHUNKS)

    # the extraction rules' test-set twins: tokens, then one job per family (extract.smk); a
    # family listing its own layers has its own rule, which has no twin here yet
    _TOP = [
        g for g in S.extraction_groups() if g[2]
    ]  # the families at the top-level layers
    _OUTSIDE = [f for f in V_FAMILIES if not _TOP or f not in _TOP[0][1]]
    if _OUTSIDE:
        raise ConfigError(
            f"config: validation.test_texts needs the validated SAE families at the top-level "
            f"`layers`; {', '.join(_OUTSIDE)} list their own saes.<name>.layers (not extracted "
            "for the test set yet). Leave them out of validation.families, remove their "
            "`layers`, or set validation.test_texts: null."
        )
    _TEST_LAYERS = _TOP[0][0]

    use rule extract_tokens as validation_test_tokens with:
        input:
            text_file=lambda w: str(TEST_CATEGORIES[w.category]),
            model=model_and_sae_files([], []),
        output:
            tokens=LT.tokens_chunk("{category}", "{chunk}"),
        log:
            L.log("validation", "test_tokens_category={category}/chunk={chunk}"),
        params:
            n_chunks=lambda w: TEST_CHUNKS[w.category],  # the other params: the same
            content=lambda w: local_content((), None, [TEST_CATEGORIES[w.category]]),

    use rule extract_activations as validation_test_extract with:
        input:
            text_file=lambda w: str(TEST_CATEGORIES[w.category]),
            model_and_saes=lambda w: model_and_sae_files([w.family], LAYERS),
        output:
            activations=[
                LT.activations_chunk("{family}", l, "{category}", "{chunk}")
                for l in _TEST_LAYERS
            ],
            pooled=[
                LT.pooled_chunk("{family}", l, "{category}", "{chunk}")
                for l in _TEST_LAYERS
            ],
        log:
            L.log(
                "validation",
                "test_extract_sae={family}/category={category}/chunk={chunk}",
            ),
        params:
            n_chunks=lambda w: TEST_CHUNKS[w.category],  # the other params: the same
            content=lambda w: local_content(
                [w.family], LAYERS, [TEST_CATEGORIES[w.category]]
            ),

    use rule analysis_texts as validation_test_texts with:
        input:
            tokens=LT.tokens(),
        output:
            LT.texts,
        log:
            L.log("validation", "test_texts"),

    use rule analysis_per_text as validation_test_per_text with:
        input:
            tokens=LT.tokens(),
            activations=lambda w: LT.activations(w.family, w.layer),
        output:
            LT.per_text("{family}", "{layer}"),
        log:
            L.log("validation", "test_per_text_sae={family}_layer={layer}"),

    rule validation_test_set:
        """The specialists selected on every study text, evaluated on the test texts."""
        input:
            per_text=[L.per_text(f, l) for f, l in V_LAYERS],
            texts=L.texts,
            test_per_text=[LT.per_text(f, l) for f, l in V_LAYERS],
            test_texts=LT.texts,
        output:
            table=L.validation_table("test_set"),
            table_csv=L.validation_table("test_set", "csv"),
        log:
            L.log("validation", "test_set"),
        conda:
            "../envs/sae_specialists.yaml"
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            threshold=S.analysis.threshold,
            candidates=S.analysis.candidates,
        script:
            "../../scripts/validation_test_set.py"
