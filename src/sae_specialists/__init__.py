"""sae-specialists: which SAE features specialise in which kinds of text, at which layers.

Modules that the analysis stage imports (``settings``, ``texts``, ``shards``, ``analysis``) never
import torch; only the extraction-side modules (``models``, ``saes``, ``extract``, ``demo``) do.
"""

__version__ = "0.1.0"
