"""Methodology study: how preprocessing and selection choices make specialists appear or vanish.

Modules (only ``variants`` imports torch; everything else reads shards / per-text tables):

- ``settings``: the ``methodology:`` config section and its defaults;
- ``dense``: per (SAE, layer) dense text x active-feature matrices built from per-text tables;
- ``scoring``: the vectorised specialist selection (candidates, score n_in - n_out, tie-breaks)
  over many weightings / thresholds at once — the engine of the sweep, all-feature scoring and
  the bootstrap;
- ``sweep``, ``bootstrap``, ``auroc``, ``allfeatures``: the threshold sweep, the bootstrap
  stability, the threshold-free AUROC view and all-feature scoring vs the top-k candidate rule;
- ``ablation``: the 16 method variants' specialists (encode order x padding x BOS x aggregation);
- ``variants``: the model-needing variants (one padded forward pass per category);
- ``charts``, ``report``, ``entry``: charts, the markdown summary, Snakemake entry points;
- ``benchmark``: bootstrap timing at the study's size (``python -m ...methodology.benchmark``).
"""
