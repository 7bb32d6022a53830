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

EXPECTED = {
    "causal": {
        "detector": {
            "category": "urls",
            "delta_in": {
                "0": -1.50357326589301e-09,
                "1": -2.0020687330202235e-10,
                "2": -6.374190952840308e-10,
                "3": -3.8636338572928253e-10,
            },
            "delta_out": {
                "0": -1.4126403750462183e-10,
                "1": -2.7610688338849544e-10,
                "2": -1.9625149124838766e-10,
                "3": -3.4311171893093505e-10,
            },
        },
        "driver": {
            "category": "python",
            "delta_in": {
                "0": 0.033818327282443585,
                "1": 0.033285334313496936,
                "2": 0.029452280193027924,
                "3": 0.027829830681980906,
            },
            "delta_out": {
                "0": 0.0006206073968092527,
                "1": 0.0005644014248802131,
                "2": 0.0005303953398425387,
                "3": 0.000533044341772487,
            },
            "ratio": {
                "0": 54.49230456535768,
                "1": 58.97457526894323,
                "2": 55.52891962016782,
                "3": 52.209222575068964,
            },
            "steering": {
                "min_driver_tokens": 5,
                "prompts": ["The weather today is", "I went to the store and"],
                "scales": [2, 5],
                "tokens": 10,
            },
        },
    },
    "comparison": {
        "chain": {"category": "math", "layers": [1, 2]},
        "cross_family_cosines": {
            "attn/0/conversational~res/1/conversational": 0.8,
            "mlp/0/non_english~res/1/non_english": 0.8,
        },
        "first_family": {
            "conversational": {"layer": 0, "sae": "attn"},
            "non_english": {"layer": 0, "sae": "mlp"},
        },
        "layer_cosines": {
            "conversational": {"0-1": 0.700546, "1-2": 0.654615, "2-3": 0.61072},
            "formal": {"0-1": 0.66892, "1-2": 0.581908, "2-3": 0.670812},
            "math": {"0-1": 1.0, "1-2": 1.0, "2-3": 1.0},
            "non_english": {"0-1": 0.631241, "1-2": 0.522833, "2-3": 0.744491},
            "python": {"0-1": 1.0, "1-2": 1.0, "2-3": 1.0},
            "social": {"0-1": 0.729774, "1-2": 0.537566, "2-3": 0.724061},
            "urls": {"0-1": 1.0, "1-2": 1.0, "2-3": 1.0},
        },
        "split": {
            "category": "math",
            "children": {
                "math_arithmetic": {
                    "cosine": 0.707107,
                    "n_assigned": 4,
                    "n_covered": 8,
                    "share": 0.4444444444444444,
                },
                "math_latex": {
                    "cosine": 0.707107,
                    "n_assigned": 5,
                    "n_covered": 6,
                    "share": 0.5555555555555556,
                },
            },
            "layer": 2,
            "n_parent_texts": 9,
            "parent": "math",
        },
    },
    "specialists": {
        "attn": {
            "0": {
                "conversational": ["conversational", 9, 0],
                "formal": [None, 0, 0],
                "math": [None, 0, 0],
                "non_english": [None, 0, 0],
                "poetry": [None, 0, 0],
                "python": [None, 0, 0],
                "recipes": [None, 0, 0],
                "social": [None, 0, 0],
                "urls": [None, 0, 0],
            },
            "1": {
                "conversational": [None, 0, 0],
                "formal": [None, 0, 0],
                "math": [None, 0, 0],
                "non_english": [None, 0, 0],
                "poetry": [None, 0, 0],
                "python": [None, 0, 0],
                "recipes": [None, 0, 0],
                "social": [None, 0, 0],
                "urls": [None, 0, 0],
            },
            "2": {
                "conversational": [None, 0, 0],
                "formal": [None, 0, 0],
                "math": [None, 0, 0],
                "non_english": [None, 0, 0],
                "poetry": [None, 0, 0],
                "python": [None, 0, 0],
                "recipes": [None, 0, 0],
                "social": [None, 0, 0],
                "urls": [None, 0, 0],
            },
            "3": {
                "conversational": [None, 0, 0],
                "formal": [None, 0, 0],
                "math": [None, 0, 0],
                "non_english": [None, 0, 0],
                "poetry": [None, 0, 0],
                "python": [None, 0, 0],
                "recipes": [None, 0, 0],
                "social": [None, 0, 0],
                "urls": [None, 0, 0],
            },
        },
        "mlp": {
            "0": {
                "conversational": [None, 0, 0],
                "formal": [None, 0, 0],
                "math": [None, 0, 0],
                "non_english": ["non_english", 8, 0],
                "poetry": [None, 0, 0],
                "python": [None, 0, 0],
                "recipes": [None, 0, 0],
                "social": [None, 0, 0],
                "urls": [None, 0, 0],
            },
            "1": {
                "conversational": [None, 0, 0],
                "formal": [None, 0, 0],
                "math": [None, 0, 0],
                "non_english": [None, 0, 0],
                "poetry": [None, 0, 0],
                "python": [None, 0, 0],
                "recipes": [None, 0, 0],
                "social": [None, 0, 0],
                "urls": [None, 0, 0],
            },
            "2": {
                "conversational": [None, 0, 0],
                "formal": [None, 0, 0],
                "math": [None, 0, 0],
                "non_english": [None, 0, 0],
                "poetry": [None, 0, 0],
                "python": [None, 0, 0],
                "recipes": [None, 0, 0],
                "social": [None, 0, 0],
                "urls": [None, 0, 0],
            },
            "3": {
                "conversational": [None, 0, 0],
                "formal": [None, 0, 0],
                "math": [None, 0, 0],
                "non_english": [None, 0, 0],
                "poetry": [None, 0, 0],
                "python": [None, 0, 0],
                "recipes": [None, 0, 0],
                "social": [None, 0, 0],
                "urls": [None, 0, 0],
            },
        },
        "res": {
            "0": {
                "conversational": ["lottery_pizza", 1, 1],
                "formal": ["lottery_meeting", 1, 1],
                "math": ["math", 9, 0],
                "non_english": ["lottery_pour", 1, 1],
                "poetry": ["poetry_sorrow", 6, 0],
                "python": ["python", 6, 1],
                "recipes": ["lottery_dinner", 2, 1],
                "social": ["social", 9, 0],
                "urls": ["urls", 7, 1],
            },
            "1": {
                "conversational": ["conversational", 9, 0],
                "formal": ["formal", 2, 0],
                "math": ["math", 9, 0],
                "non_english": ["non_english", 7, 0],
                "poetry": ["poetry_archaic", 6, 0],
                "python": ["python", 8, 2],
                "recipes": ["lottery_dinner", 2, 1],
                "social": ["social", 9, 0],
                "urls": ["urls", 9, 2],
            },
            "2": {
                "conversational": ["conversational", 9, 1],
                "formal": ["formal", 3, 0],
                "math": ["math", 9, 0],
                "non_english": ["non_english", 8, 0],
                "poetry": ["poetry_archaic", 6, 0],
                "python": ["python", 8, 2],
                "recipes": ["lottery_dinner", 2, 1],
                "social": ["social", 10, 0],
                "urls": ["urls", 10, 4],
            },
            "3": {
                "conversational": ["conversational", 9, 1],
                "formal": ["formal", 5, 3],
                "math": ["math", 9, 1],
                "non_english": ["non_english", 10, 0],
                "poetry": ["poetry_archaic", 6, 0],
                "python": ["python", 8, 3],
                "recipes": ["lottery_dinner", 2, 1],
                "social": ["social", 10, 2],
                "urls": ["urls", 10, 7],
            },
        },
        "res_narrow": {
            "2": {
                "conversational": ["conversational", 9, 1],
                "formal": ["formal", 3, 0],
                "math": ["math", 9, 0],
                "non_english": ["non_english", 8, 0],
                "poetry": ["frequent", 0, 0],
                "python": ["python", 8, 2],
                "recipes": ["frequent", 0, 0],
                "social": ["social", 10, 0],
                "urls": ["urls", 10, 4],
            }
        },
        "res_wide": {
            "2": {
                "conversational": ["conversational", 9, 1],
                "formal": ["formal", 3, 0],
                "math": ["math_arithmetic", 8, 0],
                "non_english": ["non_english", 8, 0],
                "poetry": ["frequent", 0, 0],
                "python": ["python", 8, 2],
                "recipes": ["frequent", 0, 0],
                "social": ["social", 10, 0],
                "urls": ["urls", 10, 4],
            }
        },
    },
    "validation": {
        "cells": {
            "conversational": {
                "0": {"heldout_auroc": 0.49411764705882355, "permutation_p": 0.8321678321678322},
                "1": {"heldout_auroc": 0.9941176470588236, "permutation_p": 0.000999000999000999},
                "2": {"heldout_auroc": 0.9941176470588236, "permutation_p": 0.000999000999000999},
                "3": {"heldout_auroc": 0.9941176470588236, "permutation_p": 0.000999000999000999},
            },
            "formal": {
                "0": {"heldout_auroc": 0.49411764705882355, "permutation_p": 0.8271728271728271},
                "1": {"heldout_auroc": 0.9705882352941175, "permutation_p": 0.08191808191808192},
                "2": {"heldout_auroc": 0.9705882352941175, "permutation_p": 0.000999000999000999},
                "3": {"heldout_auroc": 0.8705882352941176, "permutation_p": 0.08191808191808192},
            },
            "math": {
                "0": {"heldout_auroc": 0.9411764705882353, "permutation_p": 0.000999000999000999},
                "1": {"heldout_auroc": 0.9411764705882353, "permutation_p": 0.000999000999000999},
                "2": {"heldout_auroc": 0.9411764705882353, "permutation_p": 0.000999000999000999},
                "3": {"heldout_auroc": 0.9411764705882353, "permutation_p": 0.000999000999000999},
            },
            "non_english": {
                "0": {"heldout_auroc": 0.49411764705882355, "permutation_p": 0.8151848151848152},
                "1": {"heldout_auroc": 1.0, "permutation_p": 0.000999000999000999},
                "2": {"heldout_auroc": 1.0, "permutation_p": 0.000999000999000999},
                "3": {"heldout_auroc": 1.0, "permutation_p": 0.000999000999000999},
            },
            "poetry": {
                "0": {"heldout_auroc": 0.5604166666666666, "permutation_p": 0.000999000999000999},
                "1": {"heldout_auroc": 0.5604166666666666, "permutation_p": 0.000999000999000999},
                "2": {"heldout_auroc": 0.5604166666666666, "permutation_p": 0.000999000999000999},
                "3": {"heldout_auroc": 0.5604166666666666, "permutation_p": 0.000999000999000999},
            },
            "python": {
                "0": {"heldout_auroc": 0.9882352941176471, "permutation_p": 0.000999000999000999},
                "1": {"heldout_auroc": 0.9882352941176471, "permutation_p": 0.000999000999000999},
                "2": {"heldout_auroc": 0.9882352941176471, "permutation_p": 0.000999000999000999},
                "3": {"heldout_auroc": 0.9882352941176471, "permutation_p": 0.000999000999000999},
            },
            "social": {
                "0": {"heldout_auroc": 1.0, "permutation_p": 0.000999000999000999},
                "1": {"heldout_auroc": 1.0, "permutation_p": 0.000999000999000999},
                "2": {"heldout_auroc": 1.0, "permutation_p": 0.000999000999000999},
                "3": {"heldout_auroc": 1.0, "permutation_p": 0.000999000999000999},
            },
            "urls": {
                "0": {"heldout_auroc": 0.9941176470588236, "permutation_p": 0.000999000999000999},
                "1": {"heldout_auroc": 0.9941176470588236, "permutation_p": 0.000999000999000999},
                "2": {"heldout_auroc": 0.9941176470588236, "permutation_p": 0.000999000999000999},
                "3": {"heldout_auroc": 0.9941176470588236, "permutation_p": 0.001998001998001998},
            },
        },
        "lottery": {
            "category": "recipes",
            "heldout_auroc": {
                "0": 0.48161764705882354,
                "1": 0.48161764705882354,
                "2": 0.4878676470588236,
                "3": 0.4878676470588236,
            },
            "permutation_p": {
                "0": 0.16683316683316685,
                "1": 0.15384615384615385,
                "2": 0.14985014985014986,
                "3": 0.14685314685314685,
            },
            "texts": {
                "lottery_both": ["formal", "recipes"],
                "lottery_dinner": ["conversational", "recipes", "recipes"],
                "lottery_else": ["python", "social"],
                "lottery_four": ["conversational", "formal"],
                "lottery_meeting": ["conversational", "formal"],
                "lottery_pizza": ["conversational", "social"],
                "lottery_pour": ["non_english", "recipes"],
                "lottery_table": ["recipes", "social"],
                "lottery_were": ["formal", "social"],
            },
            "winner": "lottery_dinner",
        },
        "spread": {
            "category": "poetry",
            "heldout_auroc": {
                "0": 0.5604166666666666,
                "1": 0.5604166666666666,
                "2": 0.5604166666666666,
                "3": 0.5604166666666666,
            },
        },
    },
}
