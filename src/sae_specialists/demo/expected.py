"""Outcomes of the planted structure on ``resources/demo_texts`` (seed 0), measured with an
independent computation (tests/test_demo.py: run_with_cache / run_with_hooks, numpy and
scikit-learn, none of the project's stages) and written into ``planted.json["expected"]`` for the
stage tests. tests/test_demo.py recomputes every number here, so a change to the demo that moves
one fails there first.

Conventions (the study's): per-text value = mean activation over the text's non-BOS positions;
threshold 5.0; top-5 candidates by in-category peak; score n_in - n_out.

- ``specialists[family][layer][category] = [role of the rule's winner, n_in, n_out]`` (role
  names: planted.json["families"]; None for an unplanted feature).
- ``validation.lottery``: ``recipes`` has no planted signal; its winner ``lottery_dinner`` scores
  2 - 1 = 1 at every layer. ``permutation_p``: 1000 shuffles of the category labels
  (``numpy.random.default_rng(0).permutation`` of the label array, one per shuffle), p = (1 +
  #{shuffled best score >= real score}) / 1001. ``heldout_auroc``: the rule run on the training
  texts of ``StratifiedKFold(5, shuffle=True, random_state=0)`` (by category), AUROC of the
  chosen feature's per-text values on the held-out texts, mean over folds. ``texts``: the
  categories of the texts each lottery word occurs in. The validation stage draws its own folds
  and permutations: expect the same verdicts, not the same decimals.
- ``validation.cells[category][layer]``: the same two numbers for every category of ``res``.
  Planted specialists that generalise (p <= 0.002, held-out AUROC >= 0.98): python, urls, social
  at every layer, conversational and non_english from layer 1. math: 0.941 (one math text, the
  P(A | B) one, has no math marker). formal is weak (score 2-3; p 0.082 at layers 1 and 3).
- ``validation.spread``: ``poetry``, held-out AUROC of the single best specialist (about 0.56;
  in-sample each of the four group features covers 6 of the 12 poems); a logistic probe on the
  pooled residual and the k=5 sparse probe reach 1.0 on the same folds (tests/test_demo.py).
- ``causal``: zero ablation ``x - a_f(x) W_dec[f]`` at every non-BOS position of the res hook;
  per text the mean next-token cross-entropy over the predictions made at positions 1..n-2,
  ablated minus clean; ``delta_in`` / ``delta_out``: mean over the category's texts / all other
  texts. Driver = python (every python text's loss rises; ratio in/out 52-60), pure detector =
  urls (|delta| < 1e-8 everywhere). Steering: clamping the driver to 2x / 5x its max activation
  over the demo texts at every position of each prompt makes at least 5 of the 10 greedy tokens
  python marker tokens (planted.json["causal"]["driver"]["token_ids"]); unsteered, none.
- ``comparison``: first family of conversational / non_english; decoder cosines of each
  category's res specialist between consecutive layers (chain: math, 1.0); attn/mlp layer-0
  specialist vs the res layer-1 one (0.8); the width split at layer 2: parent texts = math texts
  where the res_narrow math feature exceeds the threshold (9 of 10); a text is assigned to the
  child with the larger per-text value among those above the threshold; share = assigned /
  parent texts; covered = parent texts where the child is above the threshold; cosine of the
  child's decoder row with the parent's.
"""

import json
from importlib.resources import files

# the numbers themselves are data: expected.json, next to this module (package data)
EXPECTED = json.loads(files(__package__).joinpath("expected.json").read_text(encoding="utf-8"))
