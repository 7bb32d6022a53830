"""Checks of the steering settings against the model: each prompt with its generated tokens fits
the context, each clamp value fits the dtype. Light (no torch, no polars): the start checks
(startup.py) run them with the model's config, the causal job again with the loaded model."""

from __future__ import annotations

from ..core.errors import ConfigError

# the largest finite value of each configurable dtype (torch.finfo(dtype).max)
DTYPE_MAX = {
    "float32": 3.4028234663852886e38,
    "bfloat16": 3.3895313892515355e38,
    "float16": 65504.0,
}


def largest_value(dtype) -> float:
    """The largest finite value of a dtype (a torch dtype or its name)."""
    return DTYPE_MAX[str(dtype).removeprefix("torch.")]


def prompt_fit_problem(
    index: int, prompt: str, n_tokens: int, steer_tokens: int, n_ctx: int
) -> str | None:
    """The error when a steering prompt of ``n_tokens`` tokens (BOS included) and the
    ``steer_tokens`` generated after it do not fit the model's context ``n_ctx``; None when
    they fit."""
    if n_tokens + steer_tokens <= n_ctx:
        return None
    shown = prompt if len(prompt) <= 60 else prompt[:57] + "..."
    return (
        f"config: causal.prompts[{index}] ({shown!r}) is {n_tokens} tokens with BOS; with "
        f"causal.steer_tokens = {steer_tokens} generated tokens that is {n_tokens + steer_tokens}, "
        f"more than the model's context of {n_ctx} tokens. Shorten the prompt to at most "
        f"{max(n_ctx - steer_tokens - 1, 0)} tokens, or lower causal.steer_tokens."
    )


def check_scales_fit(scales, dtype, peak: float = 1.0) -> None:
    """Each clamp value ``scale * peak`` is finite in the model's dtype, else a ConfigError
    naming the scale: an overflowing clamp turns the steered activations into infinities and
    the samples into noise (peak 1: the scales alone, before the peaks are known)."""
    largest = largest_value(dtype)
    dtype = str(dtype).removeprefix("torch.")
    for scale in scales:
        value = float(scale) * float(peak)
        if not abs(value) <= largest:
            raise ConfigError(
                f"config: causal.steer_scales holds {scale:g}: the clamp value {scale:g} x the "
                f"feature's peak activation {peak:g} overflows the model's dtype {dtype} "
                f"(largest value {largest:.3g}). Use scales of a few times the peak (e.g. "
                "[0, 2, 5, 10])."
            )
