"""Causal check of the specialists: does removing or clamping a feature change what the
model predicts? (docs/causal.md)

- ``ablation``: remove a feature at its SAE's hook (zero / mean ablation) and measure the
  per-text change in next-token loss; feature statistics; top tokens by loss rise;
- ``stats``: per-cell in- vs out-of-category effects, bootstrap intervals, density-matched
  random controls and the "detector only" verdict;
- ``steering``: clamp a feature and generate greedily.
"""
