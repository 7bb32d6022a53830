"""Steering samples: clamp a feature at every position of a prompt and generate greedily.

Clamping feature f to value v edits the hook activation at every counted position (the BOS
position excluded) to ``x + (v - a_f(x)) * W_dec[f]``: f's activation becomes v, everything else
(the SAE's error included) is kept. The values are multiples of the feature's maximum activation
over the study's counted tokens (``causal.steer_scales``); scale 0 is a zero ablation. Generated
positions are clamped too. Every clamp of every prompt (all the layer's features and scales, and
an unsteered row per prompt) is one row of one ``HookedTransformer.generate`` call: greedy, KV
cache, no stop at EOS, prompts left-padded (TransformerLens masks the padding and shifts the
positions, so a row continues exactly as its prompt alone would, float rounding apart). The
continuation's text is the tokenizer's own ``decode`` of the generated ids (continuation_text).
"""

from __future__ import annotations

from collections.abc import Sequence

from .ablation import FeatureSite

Clamp = tuple[int, float] | None  # (feature, value), or None: unsteered


def clamp_hook(site: FeatureSite, clamps: Sequence[Clamp], starts: Sequence[int] | None = None):
    """A TransformerLens hook clamping, in batch row i, feature ``clamps[i][0]`` to
    ``clamps[i][1]`` (None: row untouched). The first call sees the prompts: row i is clamped
    from position ``starts[i]`` on (default 1: after BOS; left padding moves it); later calls
    (KV cache) see one new position per row, always clamped."""
    import torch

    rows = [i for i, c in enumerate(clamps) if c is not None]
    features = [clamps[i][0] for i in rows]
    target = torch.tensor([clamps[i][1] for i in rows], dtype=torch.float32, device=site.device)
    directions = site.directions(features).to(site.device) if rows else None
    index = torch.as_tensor(features, dtype=torch.long, device=site.device)
    first = torch.as_tensor(
        [1 if starts is None else int(starts[i]) for i in rows], device=site.device
    )
    calls = {"n": 0}

    def hook(act, hook):  # noqa: ARG001 - TransformerLens hook signature
        is_first = calls["n"] == 0
        calls["n"] += 1
        if not rows:
            return act
        flat = site.flat(act).float()
        part = flat[rows]  # [r, s, d_in]
        encoded = site.encode_rows(part.reshape(-1, part.shape[-1])).view(*part.shape[:2], -1)
        a = encoded.gather(2, index[:, None, None].expand(-1, part.shape[1], 1))[..., 0]
        change = target[:, None] - a
        if is_first:
            positions = torch.arange(part.shape[1], device=site.device)
            change = change * (positions[None] >= first[:, None])
        edited = flat.clone()
        edited[rows] = part + change[..., None] * directions[:, None]
        return edited.reshape(act.shape).to(act.dtype)

    return hook


def continuation_text(tokenizer, ids: Sequence[int]) -> str:
    """A generated continuation as text, by the tokenizer's own ``decode`` (special tokens
    kept, no clean-up of spaces): its decoder knows how the tokens join (a word-level tokenizer
    puts a space between words; joining the tokens' strings would run them together)."""
    return tokenizer.decode([int(i) for i in ids], clean_up_tokenization_spaces=False)


def steer(
    site: FeatureSite,
    prompts: Sequence[Sequence[int]],
    clamps: Sequence[Clamp],
    n_tokens: int,
) -> list[list[list[int]]]:
    """Greedy continuations (``n_tokens`` token ids) of each prompt (token ids, BOS first) under
    each clamp: ``out[prompt][clamp]``."""
    import torch

    model = site.model
    pad = model.tokenizer.pad_token_id
    lengths = {len(p) for p in prompts}
    if pad is None and len(lengths) > 1:  # no pad token: one call per prompt
        return [steer(site, [p], clamps, n_tokens)[0] for p in prompts]
    width = max(lengths)
    rows, starts = [], []
    for p in prompts:
        for _ in clamps:
            rows.append([pad] * (width - len(p)) + list(p))
            starts.append(width - len(p) + 1)
    tokens = torch.as_tensor(rows, dtype=torch.long, device=site.device)
    hook = clamp_hook(site, list(clamps) * len(prompts), starts)
    with torch.inference_mode(), site.fused(), model.hooks(fwd_hooks=[(site.hook, hook)]):
        out = model.generate(
            tokens,
            max_new_tokens=int(n_tokens),
            do_sample=False,
            stop_at_eos=False,
            use_past_kv_cache=True,
            verbose=False,
            return_type="tokens",
            prepend_bos=True,  # the rows start with BOS (after the padding)
            padding_side="left",
        )
    continuations = [row[width:].tolist() for row in out]
    n = len(clamps)
    return [continuations[i * n : (i + 1) * n] for i in range(len(prompts))]
