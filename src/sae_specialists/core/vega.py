"""The run's one Vega / Vega-Lite / vega-embed script, loaded by every chart page
(``analysis.charts.save_chart(..., script=...)``): the browser builds vendored in
``sae_specialists/assets/vega`` (its README: where they come from, versions, licences, hashes),
concatenated into ``results_dir/assets/vega/vega.js`` by rule ``analysis_chart_script``, with
their licence texts in ``LICENSES.txt`` next to it. Offline: no CDN, no network."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from .io import write_text

# (package, version, file, licence file) of the vendored browser builds, in load order
VENDORED = (
    ("vega", "6.2.0", "vega.min.js", "LICENSE.vega"),
    ("vega-lite", "6.4.1", "vega-lite.min.js", "LICENSE.vega-lite"),
    ("vega-embed", "7.0.2", "vega-embed.min.js", "LICENSE.vega-embed"),
)
VERSIONS = {pkg: version for pkg, version, _, _ in VENDORED}
LICENSES_NAME = "LICENSES.txt"  # written next to the shared script


def _vendored(name: str) -> str:
    return resources.files("sae_specialists").joinpath("assets", "vega", name).read_text("utf-8")


def chart_script_text() -> str:
    """The shared script: the vendored Vega, Vega-Lite and vega-embed builds, in load order,
    under a header naming each one's version and licence (their source-map comments dropped:
    the maps are not shipped)."""
    header = ["/*! Vega, Vega-Lite and vega-embed for the chart pages of this run."]
    header += [f"  {pkg} {version}: BSD-3-Clause" for pkg, version, _, _ in VENDORED]
    header.append(f"  Licence texts: {LICENSES_NAME} next to this file. */")
    parts = ["\n".join(header)]
    for pkg, version, name, _ in VENDORED:
        body = "\n".join(
            line for line in _vendored(name).splitlines() if not line.startswith("//# sourceMap")
        )
        parts.append(f"/* {pkg} {version} ({name}) */\n{body}")
    return "\n;\n".join(parts) + "\n"


def licenses_text() -> str:
    return (
        "\n\n".join(
            f"{pkg} {version}\n{'=' * len(f'{pkg} {version}')}\n\n{_vendored(lic).strip()}"
            for pkg, version, _, lic in VENDORED
        )
        + "\n"
    )


def write_chart_script(path: str | os.PathLike) -> None:
    """Write the run's shared chart script (``chart_script_text``) and, next to it, the
    licences of what it bundles (both atomically)."""
    path = Path(path)
    write_text(licenses_text(), path.with_name(LICENSES_NAME))
    write_text(chart_script_text(), path)
