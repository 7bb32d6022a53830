"""``{R}/dashboards/index.html``: every dashboard in one table, filtered client-side by SAE
family, layer, category (the category a feature specialises in), role, feature id and the
verdict of every verdict stage (one column each, from the stages' verdict tables:
core/verdicts.py, registered in report/findings.py); every column sorts on a click on its
heading. Plain JavaScript, no network."""

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
#dashboards th{cursor:pointer;user-select:none}
#dashboards th[aria-sort=ascending]::after{content:" ▲"}
#dashboards th[aria-sort=descending]::after{content:" ▼"}
td.vd.against{color:#c92a2a;font-weight:600}td.vd.support{color:#2b8a3e}td.vd.untested{color:#888}
"""

JS = """
(function(){
  var rows=[].slice.call(document.querySelectorAll('#dashboards tbody tr'));
  var f={family:document.getElementById('f-family'),layer:document.getElementById('f-layer'),
         category:document.getElementById('f-category'),role:document.getElementById('f-role'),
         feature:document.getElementById('f-feature')};
  [].slice.call(document.querySelectorAll('select[data-stage]')).forEach(function(el){
    f['v-'+el.dataset.stage]=el;
  });
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
      Object.keys(f).forEach(function(k){
        if(k.indexOf('v-')===0&&f[k].value){
          var v=tr.getAttribute('data-'+k)||'';
          ok=ok&&(' '+v+' ').indexOf(' '+f[k].value+' ')>=0;
        }
      });
      tr.style.display=ok?'':'none';
      if(ok){shown++;}
    });
    count.textContent=shown+' of '+rows.length+' dashboards';
  }
  var heads=[].slice.call(document.querySelectorAll('#dashboards thead th'));
  var body=document.querySelector('#dashboards tbody');
  heads.forEach(function(th,i){
    th.addEventListener('click',function(){
      var dir=th.getAttribute('aria-sort')==='ascending'?-1:1;
      heads.forEach(function(h){h.removeAttribute('aria-sort');});
      th.setAttribute('aria-sort',dir>0?'ascending':'descending');
      var num=th.dataset.type==='num';
      rows.sort(function(a,b){
        var x=a.children[i].dataset.sort||a.children[i].textContent,
            y=b.children[i].dataset.sort||b.children[i].textContent;
        if(num){x=parseFloat(x);y=parseFloat(y);x=isNaN(x)?-Infinity:x;y=isNaN(y)?-Infinity:y;}
        return (x<y?-1:x>y?1:0)*dir;
      });
      rows.forEach(function(tr){body.appendChild(tr);});
    });
  });
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


NOT_TESTED = "not tested"


def feature_verdicts(
    row: dict, verdicts: dict[tuple, dict], stages: Sequence[Sequence[str]]
) -> dict[str, list[tuple[str, str, bool | None]]]:
    """stage -> [(category, shown label, ok)] for every category the feature is the
    specialist of; a record on another feature (a stage not rerun yet) counts as not
    tested."""
    out: dict[str, list[tuple[str, str, bool | None]]] = {}
    for stage, _title, mark in stages:
        items = []
        for cat in row["specialist_categories"] or []:
            rec = verdicts.get((row["sae"], int(row["layer"]), cat, stage))
            if rec is not None and rec["feature"] not in (None, row["feature"]):
                rec = None
            if rec is None:
                items.append((cat, NOT_TESTED, None))
            else:
                label = f"{mark} {rec['label']}" if rec["ok"] is False else rec["label"]
                items.append((cat, label, rec["ok"]))
        out[stage] = items
    return out


def _verdict_cell(items: list[tuple[str, str, bool | None]], many: bool) -> tuple[str, str]:
    """(the cell's HTML, its data attribute: the labels, for the filter)."""
    if not items:
        return '<td class="vd">–</td>', ""
    oks = [ok for _, _, ok in items]
    cls = "against" if False in oks else "support" if True in oks else "untested"
    text = "; ".join(f"{cat}: {label}" if many else label for cat, label, _ in items)
    data = " ".join(sorted({_token(label) for _, label, _ in items}))
    return f'<td class="vd {cls}">{esc(text)}</td>', data


def _token(label: str) -> str:
    """A filter value: the label without its mark, spaces as underscores."""
    return label.lstrip("✗⊘ ").replace(" ", "_")


def build_index(
    features: pl.DataFrame,
    settings: dict | None = None,
    verdicts: pl.DataFrame | None = None,
    stages: Sequence[Sequence[str]] = (),
) -> str:
    """``features``: the stacked features.parquet of every layer, with a ``href`` column
    (the dashboard's path relative to the index); ``verdicts``: the verdict records of every
    enabled verdict stage (core/verdicts.py); ``stages``: (stage, title, mark) of each, in
    column order."""
    settings = settings or {}
    records = {
        (r["family"], int(r["layer"]), r["category"], r["stage"]): r
        for r in (verdicts.iter_rows(named=True) if verdicts is not None else [])
    }
    labels: dict[str, set[str]] = {stage: set() for stage, _, _ in stages}
    feats = features.sort("sae", "layer", "feature")
    families = sorted(feats["sae"].unique().to_list())
    layers = [str(x) for x in sorted(feats["layer"].unique().to_list())]
    cats = sorted({c for cs in feats["specialist_categories"].to_list() for c in (cs or [])})
    rows = []
    for r in feats.iter_rows(named=True):
        cats_r = list(r["specialist_categories"] or [])
        fv = feature_verdicts(r, records, stages)
        against = {
            cat: "; ".join(lab for s in fv for c, lab, ok in fv[s] if c == cat and ok is False)
            for cat in cats_r
        }
        vcells, vattrs = [], []
        for stage, _title, _mark in stages:
            cell, data = _verdict_cell(fv[stage], len(cats_r) > 1)
            vcells.append(cell)
            vattrs.append(f' data-v-{esc(stage, quote=True)}="{esc(data, quote=True)}"')
            labels[stage].update(_token(lab) for _, lab, _ in fv[stage])
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
            f'data-roles="{esc(" ".join(r["roles"] or []), quote=True)}"{"".join(vattrs)}>'
            f'<td>{esc(r["sae"])}</td><td class="num">{r["layer"]}</td>'
            f'<td data-sort="{r["feature"]}"><a href="{esc(r["href"], quote=True)}">'
            f"#{r['feature']}</a>{np_link}</td>"
            f"<td>{role_badges(r, {c: a for c, a in against.items() if a})}</td>"
            + "".join(vcells)
            + f"<td>{esc(r['top_category'] or '–')}</td>"
            f'<td class="num" data-sort="{r["density"]}">{pct(r["density"])}</td>'
            f'<td class="num" data-sort="{r["max_activation"]}">{fmt(r["max_activation"])}</td>'
            f"<td>{tok_html}</td></tr>"
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
            *(
                f'<label>{esc(title)}<select data-stage="{esc(stage, quote=True)}">'
                + _options(sorted(labels[stage]), "verdicts")
                + "</select></label>"
                for stage, title, _mark in stages
            ),
            '<span id="count"></span></div>',
            (
                "<p>Verdict columns: each stage's verdict on the feature as its category's "
                "specialist ("
                + " · ".join(f"{m}: against it ({t})" for _, t, m in stages)
                + "; not tested: the stage did not judge it). Click a heading to sort.</p>"
                if stages
                else "<p>Click a heading to sort.</p>"
            ),
            '<table class="data" id="dashboards"><thead><tr><th>SAE</th>'
            '<th data-type="num">layer</th><th data-type="num">feature</th><th>roles</th>'
            + "".join(f"<th>{esc(title)}</th>" for _, title, _ in stages)
            + '<th>most active in</th><th data-type="num">density</th>'
            '<th data-type="num">max activation</th><th>top logit</th></tr></thead><tbody>',
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
