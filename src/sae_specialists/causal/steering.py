"""Steering samples: clamp a feature at every position of a prompt and generate greedily.

Clamping feature f to value v edits the hook activation at every counted position (the BOS
position excluded) to ``x + (v - a_f(x)) * W_dec[f]``: f's activation becomes v, everything else
(the SAE's error included) is kept. The values are multiples of the feature's maximum activation
over the study's counted tokens (``causal.steer_scales``); scale 0 is a zero ablation. Generated
positions are clamped too. All clamps of one prompt (every feature and scale of a layer, and
an unsteered row) are the rows of one ``HookedTransformer.generate`` call (greedy, KV cache, no
stop at EOS).
"""

from __future__ import annotations

from collections.abc import Sequence

from .ablation import FeatureSite

Clamp = tuple[int, float] | None  # (feature, value), or None: unsteered


def clamp_hook(site: FeatureSite, clamps: Sequence[Clamp]):
    """A TransformerLens hook clamping, in batch row i, feature ``clamps[i][0]`` to
    ``clamps[i][1]`` (None: row untouched). The first call sees the prompt (position 0 = BOS,
    left alone); later calls (KV cache) see one new position each, all clamped."""
    import torch

    rows = [i for i, c in enumerate(clamps) if c is not None]
    features = [clamps[i][0] for i in rows]
    target = torch.tensor([clamps[i][1] for i in rows], dtype=torch.float32, device=site.device)
    directions = site.directions(features).to(site.device) if rows else None
    index = torch.as_tensor(features, dtype=torch.long, device=site.device)
    calls = {"n": 0}

    def hook(act, hook):  # noqa: ARG001 - TransformerLens hook signature
        first = calls["n"] == 0
        calls["n"] += 1
        if not rows:
            return act
        flat = site.flat(act).float()
        start = 1 if first else 0
        part = flat[rows, start:]  # [r, s, d_in]
        encoded = site.encode_rows(part.reshape(-1, part.shape[-1])).view(*part.shape[:2], -1)
        a = encoded.gather(2, index[:, None, None].expand(-1, part.shape[1], 1))[..., 0]
        edited = flat.clone()
        edited[rows, start:] = part + (target[:, None] - a)[..., None] * directions[:, None]
        return edited.reshape(act.shape).to(act.dtype)

    return hook


def steer(
    site: FeatureSite, prompt_ids: Sequence[int], clamps: Sequence[Clamp], n_tokens: int
) -> list[list[int]]:
    """Greedy continuations (``n_tokens`` token ids) of one prompt (BOS first), one per clamp."""
    import torch

    model = site.model
    rows = [list(prompt_ids)] * len(clamps)
    tokens = torch.as_tensor(rows, dtype=torch.long, device=site.device)
    hook = clamp_hook(site, clamps)
    with torch.inference_mode(), site.fused(), model.hooks(fwd_hooks=[(site.hook, hook)]):
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
