"""``{R}/dashboards/index.html``: every dashboard in one table, filtered client-side by SAE
family, layer, category (the category a feature specialises in), role and feature id.
Plain JavaScript, no network."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

import polars as pl

from ..core.html import page
from .render import CSS, fmt, pct, role_badges

esc = html.escape

INDEX_CSS = """
.filters{display:flex;flex-wrap:wrap;gap:1em;align-items:end;margin:.8em 0;padding:.6em;
 background:#f8f9fa;border:1px solid #ddd;border-radius:4px}
.filters label{display:flex;flex-direction:column;font-size:.85em;color:#555}
.filters select,.filters input{font-size:1em;padding:.15em .3em}
#count{color:#555;font-size:.9em}
code.tokv{white-space:pre}
"""

JS = """
(function(){
  var rows=[].slice.call(document.querySelectorAll('#dashboards tbody tr'));
  var f={family:document.getElementById('f-family'),layer:document.getElementById('f-layer'),
         category:document.getElementById('f-category'),role:document.getElementById('f-role'),
         feature:document.getElementById('f-feature')};
  var count=document.getElementById('count');
  function apply(){
    var fam=f.family.value,lay=f.layer.value,cat=f.category.value,role=f.role.value,
        feat=f.feature.value.trim().replace(/^#/,'');
    var shown=0;
    rows.forEach(function(tr){
      var ok=(!fam||tr.dataset.family===fam)&&(!lay||tr.dataset.layer===lay)&&
        (!cat||(' '+tr.dataset.categories+' ').indexOf(' '+cat+' ')>=0)&&
        (!role||(' '+tr.dataset.roles+' ').indexOf(' '+role+' ')>=0)&&
        (!feat||tr.dataset.feature===feat);
      tr.style.display=ok?'':'none';
      if(ok){shown++;}
    });
    count.textContent=shown+' of '+rows.length+' dashboards';
  }
  Object.keys(f).forEach(function(k){
    f[k].addEventListener('input',apply);f[k].addEventListener('change',apply);
  });
  var q=new URLSearchParams(window.location.search);
  Object.keys(f).forEach(function(k){if(q.get(k)!==null){f[k].value=q.get(k);}});
  apply();
})();
"""


def _options(values: Sequence[str], label: str) -> str:
    return f'<option value="">all {label}</option>' + "".join(
        f'<option value="{esc(v, quote=True)}">{esc(v)}</option>' for v in values
    )


def build_index(features: pl.DataFrame, settings: dict | None = None) -> str:
    """``features``: the stacked features.parquet of every layer, with a ``href`` column
    (the dashboard's path relative to the index)."""
    settings = settings or {}
    feats = features.sort("sae", "layer", "feature")
    families = sorted(feats["sae"].unique().to_list())
    layers = [str(x) for x in sorted(feats["layer"].unique().to_list())]
    cats = sorted({c for cs in feats["specialist_categories"].to_list() for c in (cs or [])})
    rows = []
    for r in feats.iter_rows(named=True):
        cats_r = list(r["specialist_categories"] or [])
        tok = r.get("top_logit")
        tok_html = f'<code class="tokv">{esc(tok)}</code>' if tok is not None else "–"
        np_link = (
            f' <a href="{esc(r["neuronpedia_url"], quote=True)}" title="Neuronpedia">↗</a>'
            if r.get("neuronpedia_url")
            else ""
        )
        rows.append(
            f'<tr data-family="{esc(r["sae"], quote=True)}" data-layer="{r["layer"]}" '
            f'data-feature="{r["feature"]}" data-categories="{esc(" ".join(cats_r), quote=True)}" '
            f'data-roles="{esc(" ".join(r["roles"] or []), quote=True)}">'
            f'<td>{esc(r["sae"])}</td><td class="num">{r["layer"]}</td>'
            f'<td><a href="{esc(r["href"], quote=True)}">#{r["feature"]}</a>{np_link}</td>'
            f"<td>{role_badges(r)}</td>"
            f"<td>{esc(r['top_category'] or '–')}</td>"
            f'<td class="num">{pct(r["density"])}</td>'
            f'<td class="num">{fmt(r["max_activation"])}</td><td>{tok_html}</td></tr>'
        )
    corpus = settings["corpus"]
    return page(
        "Feature dashboards",
        [
            '<nav><a href="../index.html">← results</a></nav>',
            "<h1>Feature dashboards</h1>",
            "<p>Every specialist (a category's best candidate with score &gt; 0) and the "
            f"{settings['top_k_features']} strongest and most frequent features of each "
            "SAE and layer. Each dashboard shows max-activating examples, examples by activation "
            "quantile, the activation histogram, the per-category profile and the logit effects."
            + (
                f" Examples also come from the reference corpus <code>{esc(str(corpus))}</code>."
                if corpus
                else ""
            )
            + "</p>",
            '<div class="filters">',
            f'<label>SAE family<select id="f-family">{_options(families, "families")}'
            "</select></label>",
            f'<label>layer<select id="f-layer">{_options(layers, "layers")}</select></label>',
            f'<label>specialist of<select id="f-category">{_options(cats, "categories")}'
            "</select></label>",
            '<label>role<select id="f-role">'
            + _options(["specialist", "strongest", "frequent"], "roles")
            + "</select></label>",
            '<label>feature id<input id="f-feature" type="search" placeholder="e.g. 22917" '
            'size="10"></label>',
            '<span id="count"></span></div>',
            '<table class="data" id="dashboards"><thead><tr><th>SAE</th><th>layer</th>'
            "<th>feature</th><th>roles</th><th>most active in</th><th>density</th>"
            "<th>max activation</th><th>top logit</th></tr></thead><tbody>",
            *rows,
            "</tbody></table>",
            f'<script type="application/json" id="dashboards-data">{_json_rows(feats)}</script>',
        ],
        CSS + INDEX_CSS,
        JS,
    )


def _json_rows(feats: pl.DataFrame) -> str:
    """The table as JSON (for scripts reading the page); '</' escaped."""
    data = feats.select("sae", "layer", "feature", "roles", "specialist_categories", "href")
    return json.dumps(data.to_dicts()).replace("</", "<\\/")
