"""Token views and dashboards read as the original text in a real browser (issue 16, item 1):
Chinese, Russian, Arabic, emoji sequences and math symbols split by a byte-level BPE tokenizer
are drawn once per character, with every token's own value on hover; screenshots in
test-artifacts/."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from browser import OfflineTab, open_offline
from test_token_text import SAMPLES, _bpe_tokenizer

from sae_specialists.analysis.tokenview import LayerViews, render_page
from sae_specialists.core.tokens import token_bytes
from sae_specialists.extraction.texts import load_yaml_category

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

# what the renderer adds to the text: BOS label and whitespace markers (core/html.py)
MARKERS = {"⟨BOS⟩": "", "↵": "", "⇥": "", "␍": "\r", "␣": " "}


def as_text(shown: str) -> str:
    for marker, original in MARKERS.items():
        shown = shown.replace(marker, original)
    return shown


def visible_samples(page) -> list[str]:
    return page.locator(".sample .text").evaluate_all("els => els.map(e => e.textContent)")


def test_token_view_reads_as_the_original_text(browser, tmp_path):
    tokenizer = _bpe_tokenizer(tmp_path, byte_fallback=False)
    rows, acts, sample_rows = [], [], []
    for k, (name, text) in enumerate(sorted(SAMPLES.items())):
        ids = [tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"]
        raw = token_bytes(tokenizer, ids)
        for pos, i in enumerate(ids):
            rows.append({"text_id": name, "token_pos": pos, "token_bytes": raw[i], "bos": pos == 0})
            if pos % 3 == 1:
                acts.append({"text_id": name, "token_pos": pos, "activation": float(pos)})
        sample_rows.append(
            {
                "category": "multi",
                "text_id": name,
                "text_order": k,
                "value": 9.0,
                "max": 9.0,
                "sample_rank": k + 1,
            }
        )
    views = LayerViews(
        sae="res",
        layer=1,
        tokens=pl.DataFrame(rows),
        neuronpedia_id=None,
        include_bos=False,
        threshold=5.0,
        categories=["multi"],
    )
    spec = {
        "feature": 7,
        "has_specialist": True,
        "score": 3,
        "n_in": 3,
        "n_out": 0,
        "peak": 9.0,
        "n_category": len(SAMPLES),
    }
    html = render_page(
        views,
        "multi",
        spec,
        pl.DataFrame(sample_rows),
        pl.DataFrame(acts),
        scale=20.0,
        category_hrefs={},
        index_href="index.html",
    )
    path = tmp_path / "multi.html"
    path.write_text(html, encoding="utf-8")
    page, errors, blocked = open_offline(browser, path)
    assert not errors and not blocked
    shown = visible_samples(page)
    assert [as_text(s) for s in shown] == [SAMPLES[name] for name in sorted(SAMPLES)]
    assert "\ufffd" not in "".join(shown) and "\\x" not in "".join(shown)
    multi = page.locator(".tok.multi")
    assert multi.count() > 5  # characters split over tokens are drawn once across them
    info = multi.first.get_attribute("data-info")
    assert info.count("position") >= 2  # ... and every token keeps its own value
    multi.first.hover()
    assert page.locator("#info").text_content() == info
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "token_view_multilingual.png"), full_page=True)
    page.close()


def test_demo_token_views_read_as_the_texts(demo_run, browser):
    """Every sample text on every token view page of the shared demo run reads as the text in
    its category file: no U+FFFD, no \\xNN for valid UTF-8."""
    texts_dir = Path(demo_run.config["texts"])
    originals = {
        t.text_id: t.text for f in sorted(texts_dir.glob("*.y*ml")) for t in load_yaml_category(f)
    }
    pages = sorted((demo_run.results / "token_views").glob("sae=*/layer=*/*.html"))
    assert pages
    checked = 0
    tab = OfflineTab(browser)
    for path in pages:
        page, errors, blocked = tab.visit(path)
        assert not errors and not blocked, path
        ids = page.locator(".sample .meta code").all_text_contents()
        for text_id, shown in zip(ids, visible_samples(page), strict=True):
            assert as_text(shown) == originals[text_id], (path, text_id)
            checked += 1
        if path.stem in ("non_english", "math", "social") and "layer=1" in str(path):
            page.screenshot(
                path=str(ARTIFACTS / f"token_view_demo_{path.stem}.png"), full_page=True
            )
    tab.close()
    assert checked >= len(pages)


def test_logit_table_shows_control_characters_visibly(browser, tmp_path):
    """Control-character tokens in the logit tables read as escapes (they drew as boxes)."""
    from sae_specialists.core.html import page
    from sae_specialists.core.tokens import token_display, token_text
    from sae_specialists.dashboards.render import CSS, logits_tables

    raws = [b"\x00", b"\x15", b"\x1b[", "\u0085".encode(), b"\xe4\xb8", b" the", b"\n"]
    logits = pl.DataFrame(
        {
            "feature": [1] * len(raws),
            "direction": ["positive"] * len(raws),
            "rank": list(range(1, len(raws) + 1)),
            "token_id": list(range(len(raws))),
            "token": [token_text(r) for r in raws],
            "token_bytes": raws,
            "token_display": [token_display(r) for r in raws],
            "effect": [1.0 - 0.1 * k for k in range(len(raws))],
        }
    )
    path = tmp_path / "logits.html"
    path.write_text(page("logits", [logits_tables(logits)], CSS), encoding="utf-8")
    page_, errors, blocked = open_offline(browser, path)
    shown = page_.locator("#logits-positive tbody td code").all_text_contents()
    assert shown == ["\\x00", "\\x15", "\\x1b[", "\\u0085", "\\xe4\\xb8", "␣the", "↵"]
    ARTIFACTS.mkdir(exist_ok=True)
    page_.screenshot(path=str(ARTIFACTS / "logit_table_control_characters.png"))
    page_.close()
