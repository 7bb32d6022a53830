"""Methodology study: how preprocessing and selection choices make specialists appear or vanish.

Modules (only ``variants`` imports torch; everything else reads shards / per-text tables):

The dense text x feature matrices (``analysis.dense``), the vectorised specialist selection
(``analysis.selection``) and the bootstrap (``analysis.bootstrap``) live in the analysis stage,
which also uses them; here:

- ``sweep``, ``auroc``, ``allfeatures``: the threshold sweep, the threshold-free AUROC view and
  all-feature scoring vs the top-k candidate rule;
- ``ablation``: the 16 method variants' specialists (encode order x padding x BOS x aggregation);
- ``variants``: the model-needing variants (one padded forward pass per category);
- ``charts``, ``report``, ``entry``: charts, the markdown summary, Snakemake entry points;
- ``benchmark``: bootstrap timing at the study's size (``python -m ...methodology.benchmark``).
"""
