"""Writes texts.jsonl: the learning-curve demo's corpus
(config/examples/datasets-learning-curve-demo.yaml), one JSON object per line with `text` and
`category`, 40 texts per category, from a fixed seed.

The demo model's planted math feature reads '+' (sae_specialists/demo/vocab.py); its per-text
value is the mean over the text's tokens, so one '+' in a short text lifts it above the
threshold (5) and one '+' in a long text leaves it above 0 but below the threshold.

- python: a short function in every text (the demo's planted python specialist: strong);
- weak: everyday sentences; 30% end with a short sum (above the threshold), 30% with a long
  clause holding one '+' (active, below the threshold), 40% with plain clauses. The math
  feature ranks 60% of them above every other text (held-out AUROC ~0.8) but counts only 30%
  in the score n_in - n_out: a weak signal, too small to beat chance with 5 texts;
- none: the same sentences with plain clauses only (same lengths): no signal.

Run from the repository root: python resources/learning_curve_demo/make_texts.py
"""

import json
import random
from pathlib import Path

N = 40
SUBJECTS = ["The neighbour", "My sister", "Our teacher", "A friend", "The driver", "His uncle"]
VERBS = [
    "walked to the market",
    "painted the fence",
    "read a long book",
    "fixed the bike",
    "watered the garden",
    "called the office",
    "opened the window",
    "fed the cat",
]
TIMES = ["this morning", "after lunch", "on Sunday", "before the rain", "late at night"]
LONG = (
    " and later that evening {a} and {b} made {c}, as everyone in the village kept telling "
    "the children again and again until the lamps went out"
)


def sentence(rng: random.Random) -> str:
    return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(TIMES)}."


def tail(rng: random.Random, kind: str) -> str:
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    if kind == "sum":
        return f" x = {a} + {b}"
    if kind == "faint":
        return LONG.format(a=a, b=f"+ {b}", c=a + b).replace(" and + ", " + ")
    if kind == "long":
        return LONG.format(a=a, b=b, c=a + b)
    return f" x is {a}"


def python(rng: random.Random, i: int) -> str:
    name = rng.choice(["total", "scale", "shift", "count", "merge"])
    return f"def {name}_{i}(self, x):\n    return self.{name}(x)"


def texts(seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    weak = ["sum"] * 12 + ["faint"] * 12 + ["short"] * 4 + ["long"] * 12
    none = ["short"] * 16 + ["long"] * 24
    rows = [{"text": python(rng, i), "category": "python"} for i in range(N)]
    rows += [{"text": sentence(rng) + tail(rng, k), "category": "weak"} for k in weak]
    rows += [{"text": sentence(rng) + tail(rng, k), "category": "none"} for k in none]
    return rows


if __name__ == "__main__":
    out = Path(__file__).with_name("texts.jsonl")
    out.write_text("".join(json.dumps(r) + "\n" for r in texts()), encoding="utf-8")
