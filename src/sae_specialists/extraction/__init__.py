"""Extraction stage: category files -> one forward pass per batch -> per-token SAE features ->
the token and activation shards of the data contract (docs/data-contract.md).

Modules: ``texts`` / ``corpus`` (category files and their text ids), ``hub``, ``models``,
``saes`` (loading), ``tokenize``, ``hooks``, ``encode``, ``engine`` (the extraction engine),
``pipeline`` (one job: a chunk of a category to its shards). Only the loading and engine modules
import torch, and only inside functions.
"""
