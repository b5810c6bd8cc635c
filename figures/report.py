"""One self-contained offline HTML report per study run.

Figures are embedded as base64 PNGs, tables rendered from the saved CSVs, the manifest shown
verbatim, and circuitsvis attention views included with the bundled JavaScript inlined ONCE
(the bundle is shared; each view is a ``CircuitsVis.render`` call). Nothing is fetched
from the network. A tiny script marks the page when it has rendered (``data-ready``, counts of
loaded and failed images, rendered views; 1.5 s after load, as React renders
asynchronously) so a headless browser can check it.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

import pandas as pd

CAPTIONS = {
    "sft_loss": "Held-out loss on target tokens during SFT of each role specialist (validation_dev dialogues).",
    "negotiation_matrix": "Rows: buyer; columns: seller. Agreement = share of dialogues ending in a deal; fairness "
                          "= 1 − |2x − 1| and bias = 2x − 1 with x the deal's position between the two targets "
                          "(defined for deals only, hence the per-cell n).",
    "personality_pairings": "SFT buyer vs SFT seller with personality prompts; error bars are 95% bootstrap CIs.",
    "cot_vs_no_cot": "Buyer with a hidden chain of thought (never shown to the seller) vs without, against the rule seller.",
    "attention_heads": "Per head: attention mass on tagged tokens minus a matched control; grey cells are not "
                       "significant after Benjamini–Hochberg (q ≥ 0.05).",
    "probe_curves": "Linear probe score by layer with its 95% CI, the majority/mean baseline and the control task.",
    "ablation_accept": "Change in logit(accept) − logit(counter) at decision points when one head is zero-ablated; "
                       "grey: q ≥ 0.05.",
    "ablation_offer": "Change in log(next offer / list price) under greedy digit decoding when one head is "
                      "zero-ablated; grey: q ≥ 0.05.",
    "ablation_rerun": "Whole negotiations re-run with the top heads ablated vs the same number of random heads.",
    "steering": "Adding α × a probe direction to the residual stream: the probe's causal check.",
    "rlvr_curves": "GRPO rollouts per step: the quantities in which the RLVR paper reads its four phases.",
    "model_comparison": "Untuned vs SFT vs BC (warm start) vs GRPO buyer, same held-out products (95% bootstrap CIs).",
}

_CHECK = """
<script>
window.addEventListener("load", function () { setTimeout(function () {
  var imgs = Array.from(document.querySelectorAll("img"));
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.dataset.imagesLoaded = ok;
  document.body.dataset.imagesFailed = imgs.length - ok;
  document.body.dataset.viewsRendered = Array.from(document.querySelectorAll(".cv-view"))
    .filter(function (d) { return d.querySelector("*") !== null; }).length;
  document.body.dataset.requests = performance.getEntriesByType("resource")
    .filter(function (e) { return !e.name.startsWith("data:"); }).length;
  document.body.dataset.ready = "1";
}, 1500); });
</script>
"""

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
figure{margin:1.5em 0}figure img{max-width:100%}figcaption{font-size:.9em;color:#555}
table{border-collapse:collapse;font-size:.85em;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 6px}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:.8em}
"""


def _figure(name: str, png: Path) -> str:
    data = base64.b64encode(png.read_bytes()).decode()
    cap = html.escape(CAPTIONS.get(name.split("_attention")[0], CAPTIONS.get(name, "")))
    return (f'<figure class="nl-figure" data-figure="{html.escape(png.stem)}">'
            f'<img alt="{html.escape(png.stem)}" src="data:image/png;base64,{data}">'
            f"<figcaption><b>{html.escape(png.stem)}</b> — {cap}</figcaption></figure>")


def _table(path: Path, title: str, columns=None, rows: int = 20) -> str:
    if not path.is_file():
        return ""
    df = pd.read_json(path) if path.suffix == ".json" else pd.read_csv(path)
    if columns:
        df = df[[c for c in columns if c in df]]
    body = df.head(rows).to_html(index=False, float_format=lambda v: f"{v:.3g}", classes="nl-table", border=0)
    return f"<h3>{html.escape(title)}</h3>{body}"


def _views(run_dir: Path) -> tuple[str, list[str]]:
    """(bundle, [view html]) from the circuitsvis pages the attention stage wrote."""
    bundle, views = "", []
    for page in sorted((run_dir / "attention").glob("attention_*.html")):
        text = page.read_text(encoding="utf-8")
        script = re.search(r"<script[^>]*>(.*)</script>", text, re.S)
        if not script:
            continue
        code = script.group(1)
        cut = code.find("CircuitsVis.render(")
        if cut < 0:
            continue
        if not bundle:
            bundle = re.sub(r"//# sourceMappingURL=\S+", "", code[:cut])
        call = code[cut:].strip()
        target = re.search(r'CircuitsVis\.render\(\s*"([^"]+)"', call).group(1)
        title = re.search(r"<h3>(.*?)</h3>", text, re.S)
        views.append(f"<h3>{title.group(1) if title else page.stem}</h3>"
                     f'<div class="cv-view" id="{target}"></div><script>{call}</script>')
    return bundle, views


def write_report(run_dir: str | Path, path: str | Path) -> Path:
    """Write the study in ``run_dir`` as one self-contained HTML page at ``path``; return ``path``.

    Reads what the stages saved (``figures/*.png``, the CSV/JSON tables, ``manifest.json``,
    the circuitsvis pages of the attention stage); parts that are missing are left out.

    Examples
    --------
    >>> write_report("results/study", "results/study/report.html")  # doctest: +SKIP
    PosixPath('results/study/report.html')
    """
    run_dir, path = Path(run_dir), Path(path)
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8")) if (run_dir / "manifest.json").is_file() else {}
    parts = [f"<h1>negolens study — {html.escape(run_dir.name)}</h1>"]
    timings = manifest.get("timings_s", {})
    if timings:
        parts.append("<p>Stages and wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + "</p>")
    parts.append("<h2>Figures</h2>")
    for png in sorted((run_dir / "figures").glob("*.png")):
        parts.append(_figure(png.stem, png))
    parts.append("<h2>Tables</h2>")
    parts.append(_table(run_dir / "ablation" / "top_heads.csv", "Top heads (accept metric) and their attention profile"))
    offer = run_dir / "ablation" / "ablation_offer_zero.csv"
    if offer.is_file():
        top = pd.read_csv(offer).assign(a=lambda d: d.effect.abs()).sort_values("a", ascending=False).drop(columns="a")
        parts.append("<h3>Heads that move the next offer most</h3>" + top.head(10).to_html(
            index=False, float_format=lambda v: f"{v:.3g}"))
    parts.append(_table(run_dir / "grpo" / "model_comparison.csv", "Untuned vs SFT vs BC vs GRPO (held-out products)"))
    parts.append(_table(run_dir / "grpo" / "eval.json", "GRPO vs its start: paired differences"))
    cond = run_dir / "negotiate" / "conditions.csv"
    if cond.is_file():
        df = pd.read_csv(cond)
        df = df[df.metric.isin(["deal", "reward", "fairness", "bias"])]
        wide = df.pivot_table(index="name", columns="metric", values="mean", sort=False).reset_index()
        parts.append("<h3>Negotiation conditions (means)</h3>" + wide.to_html(index=False, float_format=lambda v: f"{v:.3f}"))
    bundle, views = _views(run_dir)
    if views:
        parts.append("<h2>Attention views (circuitsvis)</h2>")
        parts.append(f"<script>{bundle}</script>")
        parts += views
    parts.append("<h2>Manifest</h2><pre>" + html.escape(json.dumps(manifest, indent=2)) + "</pre>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>negolens — {html.escape(run_dir.name)}</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(parts)}{_CHECK}</body></html>")
    path.write_text(page, encoding="utf-8")
    return path


def check_in_browser(path: str | Path, chromium: str = "chromium", timeout: float = 120.0) -> dict:
    """Open the report in headless Chromium; return what the page's check script recorded.

    Returns ``{"ready", "images_loaded", "images_failed", "views_rendered", "requests", "figures",
    "console_errors", "failed_requests"}``. ``requests`` counts every resource the page fetched
    (a self-contained report fetches none, so none can fail); ``failed_requests`` lists the
    ``net::ERR_`` lines Chromium logged.
    """
    import shutil
    import subprocess
    import tempfile

    exe = shutil.which(chromium)
    if exe is None:
        from negolens.errors import NegolensError

        raise NegolensError("chromium not found: install the Debian package (`apt-get install chromium`, "
                            "or `make browser`)")
    with tempfile.TemporaryDirectory() as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
               "--enable-logging=stderr", "--v=0", "--virtual-time-budget=15000", "--dump-dom",
               Path(path).resolve().as_uri()]
        res = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace",
                             timeout=timeout)
    body = re.search(r"<body([^>]*)>", res.stdout)
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1))) if body else {}
    log = res.stderr.splitlines()
    return {
        "ready": attrs.get("ready") == "1",
        "images_loaded": int(attrs.get("images-loaded", 0)),
        "images_failed": int(attrs.get("images-failed", -1)),
        "views_rendered": int(attrs.get("views-rendered", 0)),
        "requests": int(attrs.get("requests", -1)),
        "figures": len(re.findall(r'class="nl-figure"', res.stdout)),
        "console_errors": [line for line in log if "CONSOLE" in line and ("Error" in line or "Uncaught" in line)],
        "failed_requests": [line for line in log if "net::ERR_" in line],
    }
