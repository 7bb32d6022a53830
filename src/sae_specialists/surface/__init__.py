"""Surface or meaning (docs/surface.md): what each specialist really detects.

Modules: ``measures`` (token-identity R², bigram R², top-token mass, trigger tokens outside the
category: numpy and scikit-learn on in-memory arrays), ``data`` (a specialist's per-token
activations over every counted position, read from the shards), ``verdict`` (token detector /
context-gated / meaning / mixed, with the thresholds of ``surface.*``), ``report`` (tables,
per-layer shares, chart, summary, the findings board's records), ``entry`` (the rules' jobs).
Reads shards and per-text tables only: no model, no torch.
"""
