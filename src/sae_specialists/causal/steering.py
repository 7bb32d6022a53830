"""Steering samples: clamp a feature at every position of a prompt and generate greedily.

Clamping feature f to value v edits the hook activation at every counted position (the BOS
position excluded) to ``x + (v - a_f(x)) * W_dec[f]``: f's activation becomes v, everything else
(the SAE's error included) is kept. The values are multiples of the feature's maximum activation
over the study's counted tokens (``causal.steer_scales``); scale 0 is a zero ablation. Generated
positions are clamped too. Every scale of one prompt is one batch row of one
``HookedTransformer.generate`` call (greedy, KV cache, no stop at EOS), beside an unsteered row.
"""

from __future__ import annotations

from collections.abc import Sequence

from .ablation import FeatureSite


def clamp_hook(site: FeatureSite, feature: int, values: Sequence[float | None]):
    """A TransformerLens hook clamping ``feature`` to ``values[row]`` in each batch row (None:
    row untouched). The first call sees the prompt (position 0 = BOS, left alone); later calls
    (KV cache) see one new position each, all clamped."""
    import torch

    direction = site.directions([feature])[0].to(site.device)
    rows = [i for i, v in enumerate(values) if v is not None]
    target = torch.tensor([values[i] for i in rows], dtype=torch.float32, device=site.device)
    calls = {"n": 0}

    def hook(act, hook):  # noqa: ARG001 - TransformerLens hook signature
        first = calls["n"] == 0
        calls["n"] += 1
        if not rows:
            return act
        flat = site.flat(act).float()
        start = 1 if first else 0
        part = flat[rows, start:]
        a = site.encode_rows(part.reshape(-1, part.shape[-1]), [feature]).view(*part.shape[:2])
        edited = flat.clone()
        edited[rows, start:] = part + (target[:, None] - a)[..., None] * direction
        return edited.reshape(act.shape).to(act.dtype)

    return hook


def steer(
    site: FeatureSite,
    feature: int,
    prompt_ids: Sequence[int],
    values: Sequence[float | None],
    n_tokens: int,
) -> list[list[int]]:
    """Greedy continuations (``n_tokens`` token ids) of one prompt (BOS first), one per value
    (None: unsteered)."""
    import torch

    model = site.model
    tokens = torch.as_tensor([list(prompt_ids)] * len(values), dtype=torch.long, device=site.device)
    hook = clamp_hook(site, feature, values)
    with torch.inference_mode(), model.hooks(fwd_hooks=[(site.hook, hook)]):
        out = model.generate(
            tokens,
            max_new_tokens=int(n_tokens),
            do_sample=False,
            stop_at_eos=False,
            use_past_kv_cache=True,
            verbose=False,
            return_type="tokens",
        )
    return [row[len(prompt_ids) :].tolist() for row in out]
