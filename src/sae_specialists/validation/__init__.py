"""Validation stage: does a specialist hold on texts it was not chosen on, beat
chance, and beat simple baselines? (docs/validation.md)

Pure computations over per-text matrices (``analysis.dense.LayerData``) and pooled residuals:

- ``folds``: stratified K-fold assignment of texts within categories (seeded; leave-one-text-out
  for a category with fewer texts than folds);
- ``metrics``: held-out AUROC (scikit-learn), precision / recall / F1 / balanced accuracy at the
  threshold, and a vectorised rank AUROC for many columns at once;
- ``heldout``: the study's selection rule (``analysis.selection``) on the training texts of
  each fold, the chosen feature evaluated on the held-out texts, fold agreement;
- ``null``: the shuffled-label null (every permutation reruns the selection, vectorised) and
  the per-cell p-value;
- ``floor``: held-out AUROC of random active features of similar density (the chance floor);
- ``baselines``: difference-of-means direction, dense L2 logistic probe, k-sparse SAE probes;
- ``verdict``: the per-cell verdict text and flags.
"""
