"""Topic x form designs (docs/surface.md): categories declared as ``topic/form``.

``surface.topics`` maps a category to ``"topic/form"`` (e.g. ``math_symbolic: math/symbolic``,
``math_verbal: math/verbal``, ``python_code: python/code``). Per SAE family and layer:

- **selection against the other topics**: a form's specialist is the study's rule
  (``analysis.selection.select``) with the texts of the *same topic's other forms* given weight
  0 (they count neither in nor out: otherwise a feature that reads the topic in every form
  scores about 0 and can never be found), next to the rule against every other category (the
  analysis' own specialist); every table says which (``against``: ``other_topics`` / ``all``);
- **top-k selective features** of a form: the k features active in it with the highest score
  n_in - n_out (against the other topics; ties: higher in-category peak, then lower id);
- per topic, **Jaccard** overlap of its forms' top-k sets and of their specialists (mean over
  pairs of forms; a specialist set is empty when the form has none);
- **marker mass share**: the share of a form specialist's activation mass, over its form's
  counted positions, on tokens that hold one of the form's marker strings
  (``<probe_texts>/<category>/marker_strings.yaml``; ``probe.marker_hits`` on the token's text);
- **pooled geometry**: cosine similarity of the texts' pooled residuals (mean over counted
  positions, the pooled-residual shards), mean over pairs of texts in the same topic and a
  different form, in the same form and a different topic, and in neither; the p-value of
  "within topic > across both" from ``permutations`` shuffles of the topic labels among the
  texts of each form (p = (1 + #{shuffled >= observed}) / (1 + permutations)).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from ..core.errors import ConfigError


@dataclass(frozen=True)
class Design:
    """category -> (topic, form) for the categories of the design."""

    cells: dict[str, tuple[str, str]]

    @classmethod
    def parse(cls, mapping: Mapping[str, str], categories) -> Design:
        cells = {}
        for category, spec in mapping.items():
            topic, sep, form = str(spec).partition("/")
            if not sep or not topic or not form or "/" in form:
                raise ConfigError(
                    f"config: surface.topics.{category} = {spec!r} must be 'topic/form' "
                    "(e.g. math/verbal)."
                )
            cells[category] = (topic, form)
        unknown = sorted(set(cells) - set(categories))
        if unknown:
            raise ConfigError(
                f"config: surface.topics names {unknown}, which are not categories of the texts "
                f"({', '.join(sorted(categories))})."
            )
        return cls(cells)

    def topics(self) -> dict[str, list[str]]:
        """topic -> its categories (sorted)."""
        out: dict[str, list[str]] = {}
        for category, (topic, _) in sorted(self.cells.items()):
            out.setdefault(topic, []).append(category)
        return out

    def same_topic_others(self, category: str) -> list[str]:
        topic = self.cells[category][0]
        return [c for c, (t, _) in self.cells.items() if t == topic and c != category]


def against_other_topics(
    categories: list[str], cat_index: np.ndarray, design: Design, category: str
) -> np.ndarray:
    """int64 [1, n_texts]: weight 0 on the texts of ``category``'s topic's other forms."""
    others = [categories.index(c) for c in design.same_topic_others(category)]
    return (~np.isin(cat_index, others)).astype(np.int64)[None, :]


def selective_features(
    values: np.ndarray,
    features: np.ndarray,
    cat_index: np.ndarray,
    c: int,
    weights: np.ndarray,
    threshold: float,
    k: int,
) -> list[int]:
    """The ``k`` features active in category ``c`` with the highest score n_in - n_out under
    ``weights`` ([n_texts]; 0: absent), ties by higher in-category peak, then lower id."""
    w = np.asarray(weights).reshape(-1)
    inside = (cat_index == c) & (w > 0)
    peak = values[inside].max(axis=0, initial=0.0)
    active = np.flatnonzero(peak > 0)
    above = (values[:, active] > threshold).astype(np.int64)
    score = w[inside] @ above[inside] - w[~inside & (w > 0)] @ above[~inside & (w > 0)]
    order = np.lexsort((features[active], -peak[active], -score))
    return [int(f) for f in features[active][order][:k]]


def jaccard(a, b) -> float | None:
    """|a ∩ b| / |a ∪ b| (None when both are empty)."""
    a, b = set(a), set(b)
    if not a and not b:
        return None
    return len(a & b) / len(a | b)


def mean_pairwise_jaccard(sets: list[set]) -> float | None:
    values = [j for a, b in combinations(sets, 2) if (j := jaccard(a, b)) is not None]
    return float(np.mean(values)) if values else None


def marker_share(token_texts: list[str], y: np.ndarray, markers) -> float | None:
    """Share of the activation mass ``y`` on the tokens whose text holds a marker string."""
    from .probe import marker_hits

    total = float(y.sum())
    if total <= 0:
        return None
    hit = np.array([bool(marker_hits(t, markers)) for t in token_texts], dtype=bool)
    return float(y[hit].sum() / total) if len(hit) else None


@dataclass(frozen=True)
class Geometry:
    within_topic: float | None  # same topic, different form
    within_form: float | None  # same form, different topic
    across: float | None  # different topic and form
    p_value: float | None  # within_topic - across, topic labels shuffled within forms
    permutations: int


def _pair_means(sim: np.ndarray, topic: np.ndarray, form: np.ndarray):
    same_t = topic[:, None] == topic[None, :]
    same_f = form[:, None] == form[None, :]
    upper = np.triu(np.ones_like(sim, dtype=bool), 1)

    def mean(mask):
        m = mask & upper
        return float(sim[m].mean()) if m.any() else None

    return mean(same_t & ~same_f), mean(same_f & ~same_t), mean(~same_t & ~same_f)


def geometry(
    pooled: np.ndarray, topic: np.ndarray, form: np.ndarray, permutations: int, seed: int
) -> Geometry:
    """Cosine geometry of the texts' pooled residuals ([n_texts, d]) by topic and form."""
    x = np.asarray(pooled, dtype=np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norm > 0, norm, 1.0)
    sim = x @ x.T
    topic, form = np.asarray(topic), np.asarray(form)
    within_topic, within_form, across = _pair_means(sim, topic, form)
    p = None
    if permutations and within_topic is not None and across is not None:
        observed = within_topic - across
        rng = np.random.default_rng(seed)
        hits = 0
        for _ in range(permutations):
            shuffled = topic.copy()
            for f in np.unique(form):
                at = np.flatnonzero(form == f)
                shuffled[at] = topic[rng.permutation(at)]
            wt, _, ac = _pair_means(sim, shuffled, form)
            if wt is not None and ac is not None and wt - ac >= observed:
                hits += 1
        p = (1 + hits) / (1 + permutations)
    return Geometry(within_topic, within_form, across, p, int(permutations))
