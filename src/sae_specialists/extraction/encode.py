"""SAE encoding of captured activations into sparse (row, feature, value) triples.

Standard and JumpReLU SAEs take a fused path: one matmul into a reused cache-sized buffer,
then the ReLU / threshold *is* the sparse selection (``pre > -b_enc``: exactly the positions
where ``relu(x @ W_enc + b_enc) > 0``), then only the selected values get their bias added. No
dense ``[batch, seq, d_sae]`` tensor, no ReLU pass, no bias pass. Other SAE architectures use
``sae.encode`` per row block.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import SAEError
from .saes import LoadedSAE

ENCODE_ROWS = {"cpu": 512}  # rows per SAE encode block (cpu: buffer ~ L2/L3 sized)
ENCODE_ROWS_DEFAULT = 8192  # cuda / mps


def check_encode_input(sae: LoadedSAE, acts, first_batch: bool):
    """Flatten hook_z-style [n, heads, d_head] inputs when the SAE expects it; check d_in."""
    width = int(np.prod(acts.shape[1:]))
    if first_batch and width != sae.d_in:
        raise SAEError(
            f"saes: SAE {sae.family!r} layer {sae.layer} ({sae.source}) expects d_in={sae.d_in} "
            f"but hook {sae.hook_name!r} of the model gives width {width}. "
            "The SAE was trained on another model or hook."
        )
    return acts


def check_hook_shape(sae: LoadedSAE, shape, batch: int, positions: int) -> None:
    """The engine encodes one vector per token: a hook's activations must be [batch, position,
    ...] (hook_z's [batch, position, head, d_head] is flattened); attention patterns
    ([batch, head, query, key]) and other shapes are an SAEError naming the hook."""
    shape = tuple(int(n) for n in shape)
    if len(shape) >= 3 and shape[:2] == (batch, positions):
        return
    raise SAEError(
        f"saes: SAE {sae.family!r} layer {sae.layer} ({sae.source}) reads hook "
        f"{sae.hook_name!r}, whose activations have shape {list(shape)} for {batch} texts of "
        f"{positions} tokens: not one vector per token ([batch, position, width]). "
        + PER_TOKEN_HOOKS
    )


PER_TOKEN_HOOKS = (
    "The engine encodes one vector per token: use an SAE trained on a per-token hook "
    "(hook_resid_pre/mid/post, hook_attn_out, hook_mlp_out, attn.hook_z, mlp.hook_post, ...)."
)


def _workspace(space: dict, name: str, numel: int, dtype, device):
    """A flat buffer shared by every encoder of a job (grown on demand, never shrunk)."""
    import torch

    buf = space.get((name, dtype))
    if buf is None or buf.numel() < numel:
        space.pop((name, dtype), None)
        buf = torch.empty(numel, dtype=dtype, device=device)
        space[(name, dtype)] = buf
    return buf[:numel]


class Encoder:
    """Encode rows of one hook with one SAE into sparse (row, feature, value) triples."""

    def __init__(self, s: LoadedSAE, workspace: dict):
        import torch

        self.s = s
        self.workspace = workspace
        sae = s.sae
        self.dtype = sae.W_enc.dtype
        kind = type(sae).__name__
        hooked = any(getattr(m, "_forward_hooks", None) for m in sae.modules())
        self.fast = (
            kind in ("StandardSAE", "JumpReLUSAE")
            and getattr(sae.cfg, "normalize_activations", "none") in ("none", None)
            and not hooked
        )
        if self.fast:
            self.W = sae.W_enc.detach()
            self.b = sae.b_enc.detach()
            self.b_dec = sae.b_dec.detach() if sae.cfg.apply_b_dec_to_input else None
            if kind == "StandardSAE":
                self.neg_b = -self.b
                self.threshold = None
            else:
                self.threshold = torch.clamp(sae.threshold.detach().to(self.dtype), min=0)

    def __call__(self, x):
        """x: [m, d_in] (m <= encode_rows) -> (rows int64, features int64, values float32)."""
        import torch

        m = x.shape[0]
        if not self.fast:
            feats = self.s.sae.encode(x.to(self.dtype))
            rows, feats_idx = (feats > 0).nonzero(as_tuple=True)
            return rows, feats_idx, feats[rows, feats_idx].float()
        x = x.reshape(m, -1).to(self.dtype)
        if self.b_dec is not None:
            x = x - self.b_dec
        width = self.W.shape[1]
        buf = _workspace(self.workspace, "pre", m * width, self.dtype, x.device)
        mask = _workspace(self.workspace, "mask", m * width, torch.bool, x.device)
        pre = torch.mm(x, self.W, out=buf.view(m, width))
        mask = mask.view(m, width)
        if self.threshold is None:
            # pre > -b  <=>  pre + b > 0  (exactly: a float sum is 0 only if the exact sum is)
            torch.gt(pre, self.neg_b, out=mask)
            rows, feats_idx = mask.nonzero(as_tuple=True)
            values = pre[rows, feats_idx] + self.b[feats_idx]
        else:
            pre.add_(self.b)
            torch.gt(pre, self.threshold, out=mask)
            rows, feats_idx = mask.nonzero(as_tuple=True)
            values = pre[rows, feats_idx]
        return rows, feats_idx, values.float()
