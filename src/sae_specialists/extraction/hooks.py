"""Hooks of one forward pass: which hook to capture for each SAE, where the forward can stop,
checks that the SAEs fit the model, and the fused torch modules the forward runs with
(``fast_modules``)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable

from ..core.errors import ModelError, SAEError
from .saes import LoadedSAE, hook_block

RESID_PRE = re.compile(r"^blocks\.(\d+)\.hook_resid_pre$")
FAST_GELU = {"gelu_new", "gelu_fast", "gelu_pytorch_tanh"}


def stop_layer(model, hook_names: list[str]) -> int | None:
    """First block that no configured hook needs (None: run every block)."""
    blocks = [hook_block(name) for name in hook_names]
    if any(b is None for b in blocks):
        return None
    deepest = max(blocks) + 1
    return deepest if deepest <= model.cfg.n_layers else None


def capture_hooks(model, hook_names: Iterable[str]) -> dict[str, str]:
    """Map each SAE hook to the hook actually captured in the forward pass.

    ``blocks.L.hook_resid_pre`` (L >= 1) is the very tensor ``blocks.{L-1}`` returns as its
    ``hook_resid_post``: capturing that lets the forward stop before block L.
    """
    out = {}
    for name in hook_names:
        match = RESID_PRE.match(name)
        layer = int(match.group(1)) if match else 0
        post = f"blocks.{layer - 1}.hook_resid_post"
        out[name] = post if layer >= 1 and post in model.hook_dict else name
    return out


def check_saes_match_model(model, saes: list[LoadedSAE]) -> None:
    for s in saes:
        if s.hook_name not in model.hook_dict:
            similar = similar_hooks(s.hook_name, model.hook_dict)
            raise SAEError(
                f"saes: SAE {s.family!r} layer {s.layer} ({s.source}) reads hook "
                f"{s.hook_name!r}, which the model does not have (it has e.g. {similar}). "
                "Pick SAEs trained on this model."
            )


def similar_hooks(hook: str, hooks, n: int = 6) -> list[str]:
    """Hook names like ``hook`` (close spellings, else those of its block), for a message."""
    import difflib

    hooks = sorted(hooks)
    close = difflib.get_close_matches(hook, hooks, n=n, cutoff=0.6)
    if close:
        return close
    block = hook.split(".hook_")[0].split(".attn")[0].split(".mlp")[0] + "."
    same_block = [h for h in hooks if h.startswith(block)]
    return (same_block or hooks)[:n]


def check_layers_exist(model, layers: list[int]) -> None:
    n_layers = int(model.cfg.n_layers)
    bad = [layer for layer in layers if layer >= n_layers]
    if bad:
        raise ModelError(
            f"config: layers {bad} do not exist: the model has {n_layers} layers "
            f"(0 to {n_layers - 1}). Fix `layers:` in the config."
        )


def _module_hooks_read(module_name: str, captured: set[str]) -> bool:
    prefix = f"{module_name}." if module_name else ""
    return any(h.startswith(prefix) for h in captured)


def _sdpa_ok(model, module) -> bool:
    """Plain causal multi-head attention that F.scaled_dot_product_attention computes exactly."""
    import torch

    cfg = model.cfg
    softcap = getattr(cfg, "attn_scores_soft_cap", -1.0)
    return (
        type(module).__name__ == "Attention"
        and cfg.positional_embedding_type == "standard"
        and cfg.attention_dir == "causal"
        and getattr(module, "_attention_dir_override", None) is None
        and getattr(module, "attn_type", "global") == "global"
        and cfg.n_key_value_heads is None
        and not (cfg.use_split_qkv_input or cfg.use_attn_in or cfg.use_attn_result)
        and not getattr(cfg, "load_in_4bit", False)
        and not getattr(cfg, "use_qk_norm", False)
        and getattr(cfg, "clip_qkv", None) is None
        and (softcap is None or softcap <= 0)
        and not getattr(cfg, "use_logn_attn", False)
        and not getattr(cfg, "use_attention_sinks", False)
        and getattr(module, "q_norm", None) is None
        and isinstance(getattr(module, "W_Q", None), torch.nn.Parameter)
    )


def _sdpa_forward(module, masks: dict):
    """A forward for a TransformerLens Attention module: one fused QKV matmul, fused
    scaled-dot-product attention (causal + key-padding mask), one output matmul."""
    import torch
    import torch.nn.functional as F

    n_heads, d_head = module.W_Q.shape[0], module.W_Q.shape[2]
    w_qkv = torch.cat(
        [
            w.permute(0, 2, 1).reshape(n_heads * d_head, -1)
            for w in (module.W_Q, module.W_K, module.W_V)
        ]
    ).contiguous()
    b_qkv = torch.cat([b.reshape(-1) for b in (module.b_Q, module.b_K, module.b_V)])
    w_o = module.W_O.permute(2, 0, 1).reshape(module.W_O.shape[2], -1).contiguous()
    b_o = module.b_O
    scale = 1.0 / float(module.attn_scale)
    original = type(module).forward

    def forward(
        query_input,
        key_input,
        value_input,
        past_kv_cache_entry=None,
        additive_attention_mask=None,
        attention_mask=None,
        position_bias=None,
    ):
        if (
            past_kv_cache_entry is not None
            or additive_attention_mask is not None
            or position_bias is not None
            or query_input.dim() != 3
        ):
            return original(
                module,
                query_input,
                key_input,
                value_input,
                past_kv_cache_entry,
                additive_attention_mask,
                attention_mask,
                position_bias,
            )
        batch, seq, _ = query_input.shape
        qkv = F.linear(query_input, w_qkv, b_qkv).view(batch, seq, 3, n_heads, d_head)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [batch, heads, seq, d_head]
        # causal & key-padding mask: built once per forward pass, shared by every layer
        if masks.get("key") is not attention_mask or masks.get("seq") != seq:
            causal = torch.ones(seq, seq, dtype=torch.bool, device=q.device).tril_()
            if attention_mask is not None:
                masks["mask"] = causal[None, None] & attention_mask.bool()[:, None, None, :]
            else:
                masks["mask"] = causal[None, None]
            masks["key"], masks["seq"] = attention_mask, seq
        z = F.scaled_dot_product_attention(q, k, v, attn_mask=masks["mask"], scale=scale)
        z = z.transpose(1, 2).reshape(batch, seq, n_heads * d_head)
        return F.linear(z, w_o, b_o)

    return forward


@contextlib.contextmanager
def fast_modules(model, captured: Iterable[str]):
    """Swap TransformerLens's unfused modules for fused torch ops while extracting.

    - GELU-tanh (gelu_new): ``F.gelu(approximate="tanh")``, one pass instead of eight;
    - LayerNorm / LayerNormPre: ``F.layer_norm`` (biased variance, as TransformerLens), one pass
      instead of nine, computed once when a block normalises the same tensor for Q, K and V;
    - plain causal attention: one fused QKV matmul and ``F.scaled_dot_product_attention``
      instead of three projections (each re-laying out its weights), explicit scores, mask
      passes, softmax and NaN cleanup.
    Same functions; outputs differ by float rounding only. Only float32/float64 models, only
    modules none of whose hooks is read (a module whose hook is read keeps its own forward);
    block-level hooks (resid_pre/mid/post, attn_out, mlp_out) fire as usual. Restored on exit.
    """
    import torch
    import torch.nn.functional as F

    captured = set(captured)
    restore = []
    memo: list = [None, None, None]  # the last LayerNorm call: module, input, output
    masks: dict = {}  # the attention mask of the current forward pass
    if model.cfg.dtype not in (torch.float32, torch.float64):
        yield
        return
    try:
        for name, module in model.named_modules():
            kind = type(module).__name__
            if _module_hooks_read(name, captured):
                continue
            if kind in ("LayerNorm", "LayerNormPre"):
                length = int(getattr(module, "length", model.cfg.d_model))
                w, b = (module.w, module.b) if kind == "LayerNorm" else (None, None)

                def forward(x, m=module, n=length, w=w, b=b, e=float(module.eps)):
                    if m is memo[0] and x is memo[1]:
                        return memo[2]
                    y = F.layer_norm(x, (n,), w, b, e)
                    memo[:] = [m, x, y]
                    return y

                module.forward = forward
                restore.append((module, "forward", None))
            elif kind == "Attention" and _sdpa_ok(model, module):
                module.forward = _sdpa_forward(module, masks)
                restore.append((module, "forward", None))
            elif (
                getattr(module, "act_fn", None) is not None
                and model.cfg.act_fn in FAST_GELU
                and getattr(module, "hook_mid", None) is None
            ):
                restore.append((module, "act_fn", module.act_fn))
                module.act_fn = _gelu_tanh
        yield
    finally:
        memo[:] = [None, None, None]
        masks.clear()
        for module, attr, old in reversed(restore):
            if attr == "forward":
                del module.forward
            else:
                setattr(module, attr, old)


def _gelu_tanh(x):
    import torch.nn.functional as F

    return F.gelu(x, approximate="tanh")
