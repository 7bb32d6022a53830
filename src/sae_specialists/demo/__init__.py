"""The offline demo: a tiny HookedTransformer and SAE families with *planted* structure.

Everything is built from a fixed seed with no network, in the project's local formats (a real
TransformerLens ``HookedTransformer`` saved as config.json + model.safetensors + a tokenizers
tokenizer saved with ``save_pretrained``; real SAELens ``StandardSAE`` ``save_model``
directories), so ``snakemake --cores 4 --configfile config/demo.yaml`` runs end to end on a fresh
clone. Only the demo rule, ``scripts/build_demo.py`` and the tests import this package.

Modules: ``vocab`` (tokenizer and the residual-stream layout: one planted meaning per dimension),
``model`` (embedding, block-0 writers, causal unembedding), ``saes`` (the SAE families),
``build`` (writes the assets and ``planted.json``), ``expected`` (the outcomes measured on
``resources/demo_texts``, written into ``planted.json`` and checked by tests/test_demo.py).

What is planted where (feature ids per family and layer: ``planted.json["families"]``; the res
family also under ``["layers"]``). Texts: ``resources/demo_texts`` = the 7 study categories
(symlinks to resources/texts) + ``recipes`` + ``poetry``.

Residual family ``res`` (``blocks.L.hook_resid_pre``, L = 0-3, d_sae 128):
- one specialist per study category reading its marker dimension, stronger in deeper layers
  (python, urls, math, social at every layer; formal weak early; ``conversational`` and
  ``non_english`` only from layer 1: their direction is written by block 0, see below);
- a *frequent* feature (every non-BOS token, weakly), a *BOS-only* feature (very strong at BOS:
  must vanish once BOS is excluded), and a *logit* feature (a noise feature whose decoder row is
  the unembedding column of " fox");
- *lottery* features (validation): ``lottery_<word>`` fires very strongly on one word (its token's
  identity direction) that occurs in 2-3 texts of different categories (``vocab.LOTTERY_WORDS``,
  drawn at random); ' dinner' is in one conversational text and two recipes, so ``recipes`` (no
  planted signal) gets ``lottery_dinner`` with score n_in - n_out = 2 - 1 = 1 at every layer: the
  study's rule calls it a specialist, the shuffled-label null and held-out texts must not;
- *spread* category (validation) ``poetry``: four weak features ``poetry_<group>``, each reading one
  group of poetry marker words and firing on 6 of the 12 poems; every poetry marker also carries
  a shared poetry dimension that no SAE feature reads, so the pooled residual separates poetry
  perfectly while the best single feature covers half of it;
- causal: the python specialist is the causal *driver* (its decoder row reconstructs the python
  marker dimension, which the unembedding maps to python next-token predictions); the urls
  specialist is a *pure detector* (decoder row along the all-ones direction, which every
  LayerNorm removes and the centred unembedding ignores: ablating it leaves the loss unchanged);
- comparison: the math specialist's decoder row is the same direction at every layer (cross-layer
  chain, cosine 1.0); the other mixed specialists' rows change from layer to layer (~0.6);
- surface: the *meaning* plant: ten arithmetic words spelled out (`` plus``, `` equals``...,
  ``vocab.MEANING_WORDS``) are whole-word tokens added to the trained vocabulary and carry the
  math dimension, so the math specialist fires on arithmetic written in words (the meaning-only
  probe texts) while python, urls and social stay token detectors and conversational
  context-gated; no demo text holds one of the words (``planted.json["surface"]``);
- circuits: at layer 0 the math specialist's row gives back only 0.48 of its dimension
  (``saes.CHAIN_STEP``), so math layer 0 -> math layer 1 is a linear two-step chain (ablating A
  at its peak lowers B by 0.96 of B's peak; ``planted.json["circuits"]``).

Component families (comparison), ``attn`` = ``blocks.L.hook_attn_out`` and ``mlp`` =
``blocks.L.hook_mlp_out``, L = 0-3, d_sae 64: head 0 of block 0's attention writes the
conversational direction (at every position after a chatty cue word), neuron 0 of block 0's MLP
writes the non-English direction (at each non-English token); nothing else ever writes either.
So ``conversational`` has its first specialist in ``attn`` at layer 0 (``mlp`` never has one) and
``non_english`` in ``mlp`` at layer 0 (``attn`` never); ``res`` has both only from layer 1.

Width pair (comparison) at layer 2 on ``blocks.2.hook_resid_pre``: ``res_narrow`` (d_sae 32) has
one math feature; ``res_wide`` (d_sae 256) has instead ``math_latex`` (LaTeX markers) and
``math_arithmetic`` (every other math marker), which split the narrow feature's firing.

The exact expected outcomes (scores, AUROCs, p-values, Δloss, shares, cosines) are in
``planted.json["expected"]`` (``expected.py``) with how each was computed. In short (seed 0,
threshold 5, mean over non-BOS tokens):

- recipes: winner lottery_dinner, score 1 at every layer; shuffled-label p 0.15-0.17 (1,000
  shuffles), held-out AUROC 0.48-0.49 (5 stratified folds).
- python 0.988, urls 0.994, social 1.0 held-out AUROC at every layer, conversational 0.994 and
  non_english 1.0 from layer 1 (p <= 0.002); math 0.941; formal weak (p 0.082 at layers 1, 3).
- poetry: best single feature score 6 (6 of 12 poems), held-out AUROC 0.56; dense probe on the
  pooled residual 1.0, k=5 sparse probe 1.0.
- python ablation: Δloss in / out 0.034 / 0.00062 (layer 0) ... 0.028 / 0.00053 (layer 3),
  ratio 52-59; urls ablation |Δloss| < 1e-8; steering python at 2x / 5x: python keywords.
- first family: conversational attn (layer 0), non_english mlp (layer 0); res math decoder
  cosine 1.0 between layers, other mixed rows 0.52-0.75; width split: 9 parent texts, LaTeX
  child 5 (share 0.556), arithmetic child 4 (0.444), child-parent decoder cosine 0.707.
"""

from .build import asset_files, build_demo, logit_token_id
from .model import N_LAYERS, build_model
from .saes import D_SAE, FAMILIES, build_sae
from .vocab import D_MODEL, marker_categories

__all__ = [
    "D_MODEL",
    "D_SAE",
    "FAMILIES",
    "N_LAYERS",
    "asset_files",
    "build_demo",
    "build_model",
    "build_sae",
    "logit_token_id",
    "marker_categories",
]
