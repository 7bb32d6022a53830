"""Comparison stage: specialists across SAE families (residual, attention-out,
MLP-out, ...), layers and dictionary widths. Reads the analysis tables, the activation shards
and the SAEs' own weight files; never the model (docs/comparison.md)."""
