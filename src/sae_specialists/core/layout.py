"""Output paths of the analysis stage (used by workflow/rules/analysis.smk and the index)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

PEAK_TABLES = ("strongest", "frequent", "category_peaks")
SPECIALIST_TABLES = ("selective", "candidates", "specialists")
PEAK_CHARTS = {
    "peak": "peak_by_layer",
    "peak_category": "peak_by_layer_category",
    "coverage": "coverage_by_layer",
}


def flatten(items: Iterable) -> list[str]:
    """Flatten paths given as str or (nested) lists of str, keeping order.

    The contract's ``tokens_shard(category)`` / ``activation_shard(...)`` return one shard per
    chunk of a category (a list, in text order); a plain str is accepted too.
    """
    out: list[str] = []
    for item in items:
        if isinstance(item, (str, bytes)) or not isinstance(item, Iterable):
            out.append(str(item))
        else:
            out.extend(flatten(item))
    return out


@dataclass(frozen=True)
class ActivationShardsOf:
    """Input function: every activation shard of the job's (family, layer), all categories.

    ``shard_fn(family, layer, category)`` is the contract's path helper (common.smk).
    """

    shard_fn: Callable[[str, str, str], str | list[str]]
    categories: tuple[str, ...]

    def __call__(self, wildcards: Any) -> list[str]:
        return flatten(self.shard_fn(wildcards.family, wildcards.layer, c) for c in self.categories)


@dataclass(frozen=True)
class AnalysisPaths:
    results_dir: str
    families: tuple[str, ...]
    layers: tuple[int, ...]
    categories: tuple[str, ...]

    @classmethod
    def of(
        cls,
        results_dir: str,
        families: Iterable[str],
        layers: Iterable[int],
        categories: Iterable[str],
    ) -> AnalysisPaths:
        return cls(str(results_dir), tuple(families), tuple(layers), tuple(sorted(categories)))

    # -- directories ------------------------------------------------------------------------
    @property
    def per_text_dir(self) -> str:
        return f"{self.results_dir}/per_text"

    @property
    def tables_dir(self) -> str:
        return f"{self.results_dir}/tables"

    @property
    def charts_dir(self) -> str:
        return f"{self.results_dir}/charts"

    @property
    def views_dir(self) -> str:
        return f"{self.results_dir}/token_views"

    # -- files --------------------------------------------------------------------------------
    @property
    def texts(self) -> str:
        return f"{self.per_text_dir}/texts.parquet"

    def per_text(self, family: str, layer: int | str) -> str:
        return f"{self.per_text_dir}/sae={family}/layer={layer}.parquet"

    def all_per_text(self) -> list[str]:
        return [self.per_text(f, layer) for f in self.families for layer in self.layers]

    def table(self, name: str, ext: str = "parquet") -> str:
        return f"{self.tables_dir}/{name}.{ext}"

    def tables(self, names: Iterable[str]) -> dict[str, str]:
        """Named outputs: ``name`` -> Parquet, ``name_csv`` -> its CSV twin."""
        names = list(names)
        out = {n: self.table(n) for n in names}
        out.update({f"{n}_csv": self.table(n, "csv") for n in names})
        return out

    def chart(self, stem: str, ext: str) -> str:
        return f"{self.charts_dir}/{stem}.{ext}"

    def heatmap(self, family: str, ext: str) -> str:
        return self.chart(f"specialist_scores_sae={family}", ext)

    def chart_files(self) -> list[str]:
        stems = [*PEAK_CHARTS.values(), "specialists_found"]
        files = [self.chart(s, ext) for s in stems for ext in ("html", "png")]
        return files + [self.heatmap(f, ext) for f in self.families for ext in ("html", "png")]

    def token_view(self, family: str, layer: int | str, category: str) -> str:
        return f"{self.views_dir}/sae={family}/layer={layer}/{category}.html"

    def token_views(self, family: str, layer: int | str) -> list[str]:
        return [self.token_view(family, layer, c) for c in self.categories]

    def all_token_views(self) -> list[str]:
        return [
            p for f in self.families for layer in self.layers for p in self.token_views(f, layer)
        ]

    @property
    def summary(self) -> str:
        return f"{self.results_dir}/summary.md"

    @property
    def index(self) -> str:
        return f"{self.results_dir}/index.html"

    def outputs(self) -> list[str]:
        """Every final output of the analysis stage."""
        return [
            self.index,
            self.summary,
            *self.tables(PEAK_TABLES + SPECIALIST_TABLES).values(),
            *self.chart_files(),
            self.views_dir,  # the token views (one directory output)
        ]
