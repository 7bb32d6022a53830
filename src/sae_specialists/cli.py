"""Mistakes on the command line that Snakemake reports with a raw traceback, turned into the
project's message.

The swallowed target: ``--configfile`` takes every word that follows it, so in
``snakemake --configfile config/demo.yaml analysis`` Snakemake reads ``analysis`` as a second
configuration file and stops with ``FileNotFoundError: ... 'analysis'`` before the Snakefile is
read. The repository therefore holds, at its root, one small YAML file named after each target
rule (``analysis``, ``dashboards``, ...; :data:`GUARDED_TARGETS`), holding only
``_swallowed_target: <name>``: Snakemake then loads it as a configuration, and the Snakefile's
first check (:func:`check_swallowed_target`) names the likely cause and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping

from .core.errors import ConfigError

SWALLOWED_KEY = "_swallowed_target"
# the target rules a user types (README, docs); each has its guard file at the repository root
GUARDED_TARGETS = (
    "all",
    "analysis",
    "dashboards",
    "methodology",
    "validation",
    "causal",
    "comparison",
    "surface",
    "circuits",
    "export",
    "clean_foreign",
)


def check_swallowed_target(config: Mapping) -> None:
    """Raise the project's message when a target's guard file was read as a config file."""
    target = config.get(SWALLOWED_KEY) if isinstance(config, Mapping) else None
    if target is None:
        return
    raise ConfigError(
        f"`{target}` was read as a configuration file, not as the target: --configfile takes "
        f"every word that follows it (e.g. `snakemake --configfile config/demo.yaml {target}`). "
        f"Put the target first: `snakemake --cores 4 {target} --configfile config/demo.yaml`, "
        f"or end the option with `=`: `snakemake --cores 4 --configfile=config/demo.yaml "
        f"{target}` (docs/troubleshooting.md)."
    )


def guard_text(target: str) -> str:
    """The content of a target's guard file."""
    return (
        f"# Not a configuration. `snakemake --configfile FILE {target}` reads this file as a\n"
        "# second config file (--configfile takes every word after it): the workflow then stops\n"
        "# with a message naming the mistake (src/sae_specialists/cli.py). Put the target\n"
        f"# first: snakemake {target} --configfile FILE\n"
        f"{SWALLOWED_KEY}: {target}\n"
    )
