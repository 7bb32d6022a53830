"""Shared wiring for the rule scripts: logging to the rule's log file, clear user errors."""

import logging
import sys
from contextlib import contextmanager

from .errors import UserError


@contextmanager
def rule_logging(snakemake):
    handlers = [logging.StreamHandler(sys.stderr)]
    if snakemake.log:
        handlers.append(logging.FileHandler(str(snakemake.log[0]), mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )
    try:
        yield
    except UserError as err:
        logging.getLogger("sae_specialists").error("%s", err)
        sys.exit(1)
