"""Baselines on the same folds as the held-out specialist (scikit-learn throughout).

Per fold of a cell (SAE family, layer, category), trained on the fold's training texts only and
scored on its held-out texts (held-out AUROC and balanced accuracy):

- ``diffmean``: difference-of-means direction on the pooled residual (mean over the counted
  positions of the SAE's input hook, ``pooled_residuals`` shard): w = train mean in - mean out;
  a text's score is x . w, predicted in the category when above the midpoint of the two
  projected training means;
- ``dense_probe``: L2 logistic regression on the standardised pooled residual, balanced class
  weights, C chosen inside the training fold (``LogisticRegressionCV`` over ``PROBE_CS``,
  stratified inner folds of the training texts, scored by AUROC); fitted in the training
  texts' principal-axis coordinates (``PCA``), which is the same L2 problem (tested);
- ``ksparse`` (k in ``validation.probe_k``): the k SAE features whose train-fold mean per-text
  value is higher inside the category than outside by the largest margin (mean in - mean out;
  ties: lower feature id), then L2 logistic regression on those k standardised per-text values
  with C = 1 -- SAEBench's k-sparse probing, except that SAEBench ranks by the *absolute*
  difference: SAE features are sparse and non-negative, and a feature merely absent from the
  category (a large negative difference from a few very large values elsewhere) is no
  evidence of it.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from .metrics import auroc, balanced_accuracy

PROBE_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
INNER_FOLDS = 3
MAX_ITER = 2000


def diffmean_fold(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, predictions) of the held-out texts."""
    y_train = np.asarray(y_train, dtype=bool)
    w = x_train[y_train].mean(axis=0) - x_train[~y_train].mean(axis=0)
    proj = x_train @ w
    midpoint = (proj[y_train].mean() + proj[~y_train].mean()) / 2.0
    scores = x_test @ w
    return scores, scores > midpoint


def dense_probe(y_train: np.ndarray, seed: int, cs=PROBE_CS):
    """Standardise + L2 logistic regression (balanced class weights); C by inner stratified
    CV on the training texts (AUROC) when each class has at least two of them, else C = 1."""
    n_pos = int(np.sum(y_train))
    n_min = min(n_pos, len(y_train) - n_pos)
    if n_min < 2 or len(cs) < 2:
        return sparse_probe()
    inner = StratifiedKFold(n_splits=min(INNER_FOLDS, n_min), shuffle=True, random_state=seed)
    return make_pipeline(
        StandardScaler(),
        # rotation onto the training texts' principal axes (at most n_train of them): the L2
        # problem is the same (the penalty is rotation-invariant and the optimum lies in the
        # span of the training rows), its solves ~40% faster with n_train << d_model
        PCA(),
        LogisticRegressionCV(
            Cs=list(cs),
            cv=inner,
            scoring=auroc_scorer,
            class_weight="balanced",
            l1_ratios=(0.0,),
            max_iter=MAX_ITER,
            use_legacy_attributes=False,
        ),
    )


def auroc_scorer(estimator, x: np.ndarray, y: np.ndarray) -> float:
    """Inner-CV score: AUROC of the decision function (``metrics.auroc``, the value of
    scikit-learn's ``roc_auc_score`` without its per-call validation overhead)."""
    return auroc(y, estimator.decision_function(x))


def sparse_probe(c: float = 1.0):
    """Standardise + L2 logistic regression at a fixed C (balanced class weights)."""
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(C=c, class_weight="balanced", max_iter=MAX_ITER),
    )


def fit_score(
    model, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """(held-out scores, predictions, C used) of a probe pipeline fitted on the training texts."""
    model.fit(x_train, np.asarray(y_train, dtype=bool))
    last = model[-1]
    c = float(np.ravel(last.C_)[0]) if hasattr(last, "C_") else float(last.C)
    return model.decision_function(x_test), model.predict(x_test).astype(bool), c


def ksparse_columns(values_train: np.ndarray, y_train: np.ndarray, k: int) -> np.ndarray:
    """Columns of the k largest mean in - mean out (ties: lower column), ascending."""
    y_train = np.asarray(y_train, dtype=bool)
    diff = values_train[y_train].mean(axis=0) - values_train[~y_train].mean(axis=0)
    order = np.lexsort((np.arange(len(diff)), -diff))
    return np.sort(order[:k])


def baseline_rows(
    x: np.ndarray | None,
    values: np.ndarray,
    features: np.ndarray,
    y: np.ndarray,
    folds: np.ndarray,
    ks=(1, 2, 5, 20),
    seed: int = 0,
    cs=PROBE_CS,
    threads: int = 1,
) -> list[dict]:
    """One row per (fold, method): method, k, auroc, balanced_accuracy, C, features.

    x: pooled residuals [n, d_model] (None: no residual baselines); values: per-text SAE values
    [n, F] with column feature ids ``features``; y: bool [n] in the category; folds: fold of
    every text (``folds.category_folds``). The fits are tiny (tens of texts): BLAS runs with
    ``threads`` threads (more threads only spin on a shared machine; results are the same)."""
    with threadpool_limits(limits=threads):
        return _baseline_rows(x, values, features, y, folds, ks, seed, cs)


def _baseline_rows(x, values, features, y, folds, ks, seed, cs) -> list[dict]:
    y = np.asarray(y, dtype=bool)
    rows = []
    for k_fold in range(int(folds.max()) + 1):
        train, test = folds != k_fold, folds == k_fold
        y_tr, y_te = y[train], y[test]

        def add(method, scores, pred, k=None, c=None, feats=None, _k_fold=k_fold, _y=y_te):
            rows.append(
                {
                    "fold": _k_fold,
                    "method": method,
                    "k": k,
                    "auroc": _opt(auroc(_y, scores)),
                    "balanced_accuracy": _opt(balanced_accuracy(_y, pred)),
                    "C": c,
                    "features": feats,
                }
            )

        if x is not None:
            add("diffmean", *diffmean_fold(x[train], y_tr, x[test]))
            scores, pred, c = fit_score(dense_probe(y_tr, seed, cs), x[train], y_tr, x[test])
            add("dense_probe", scores, pred, c=c)
        for k in ks:
            cols = ksparse_columns(values[train], y_tr, k)
            scores, pred, c = fit_score(
                sparse_probe(), values[np.ix_(train, cols)], y_tr, values[np.ix_(test, cols)]
            )
            add(
                "ksparse",
                scores,
                pred,
                k=int(k),
                c=c,
                feats=" ".join(str(int(f)) for f in features[cols]),
            )
    return rows


def _opt(x: float) -> float | None:
    return None if np.isnan(x) else float(x)
