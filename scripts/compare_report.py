"""scripts.compare's page, opened from the file system: OUT/index.html, the histogram of the layer's
changes (OUT/histogram.png) and a table of every filter, sorted by a click on a heading."""
import html
import json
import os

from scripts.gallery import examples_html, page

STYLE = """<style>td, th { padding: 4px 6px; border-bottom: 1px solid #333; } th[data-sort] { cursor: pointer; }
td[data-v] { text-align: right; } .same { color: #8c8; } .examples { white-space: nowrap; }
.examples img { width: 40px; height: 40px; }</style>"""
# A click sorts the rows by that column, a second the other way; nulls stay last.
SORT = """<script>
document.querySelectorAll("th[data-sort]").forEach(th => th.addEventListener("click", () => {
  const i = th.cellIndex, up = (th.dataset.up = th.dataset.up === "1" ? "0" : "1") === "1";
  const key = row => row.cells[i].dataset.v === "" ? (up ? Infinity : -Infinity) : Number(row.cells[i].dataset.v);
  [...th.closest("table").tBodies[0].rows].sort((r, s) => (up ? 1 : -1) * (key(r) - key(s)) || 0).forEach(row =>
    row.parentNode.appendChild(row));
}));
</script>"""


def histogram(summary: dict, path: str):
    from matplotlib.figure import Figure  # here: a run that stops early starts faster without it
    rows = summary["filters"]
    changes = [1 - r["activation_correlation"] for r in rows if r["activation_correlation"] is not None]
    figure = Figure(figsize=(10, 3.2), layout="tight")
    left, right = figure.subplots(1, 2)
    left.hist(changes, bins=40, range=(0, 2), color="#4a90d9")
    left.set(xlabel="1 - correlation of the filter's mean activations over the images", ylabel="filters")
    right.hist([r["weight_distance"] for r in rows if r["weight_distance"] is not None], bins=40, color="#f90")
    right.set(xlabel="weight distance: ||W_a - W_b|| / ||W_a||", ylabel="filters")
    figure.suptitle(f"Layer {summary['layer']}: {len(rows)} filters, {len(rows) - len(changes)} constant on the images")
    figure.savefig(path, dpi=100)


def number(value, text: str | None = None, css: str = "") -> str:
    shown = text or ("null" if value is None else f"{value:.4f}")
    return f'<td class="{css}" data-v="{"" if value is None else repr(value)}">{shown}</td>'


def row(rank: int, r: dict, thumbnail_of: dict) -> str:
    c, d, f = r["activation_correlation"], r["weight_distance"], r["filter"]
    same = d == 0 and c in (1.0, None)
    cells = [number(rank, str(rank)), number(f, str(f)), number(d), number(c),
             number(None if c is None else 1 - c, "no change" if same else None, "same" if same else "")]
    cells += ["<td>not drawn</td>" if r[f"picture_{side}"] is None else
              f'<td><a href="{r[f"picture_{side}"]}"><img src="{r[f"picture_{side}"]}" width="128" height="128" '
              f'alt="{side}: filter {f}"></a></td>' for side in "ab"]
    cells += [f"<td>{examples_html([(n, thumbnail_of[n]) for n in r[f'top_{side}']])}</td>" for side in "ab"]
    return "<tr>" + "".join(cells) + "</tr>"


def write_report(summary: dict, out: str, thumbnail_of: dict, fields: dict, unchanged: bool):
    histogram(summary, os.path.join(out, "histogram.png"))
    layer, rows = summary["layer"], summary["filters"]
    va, vb = (html.escape(summary[side]["model_version"]) for side in "ab")
    verdict = (f"<b>No change</b>: the two versions have the same weights at layer {layer} and give the same "
               "activations on every image." if unchanged else f"{sum(r['weight_distance'] != 0 for r in rows)} of "
               f"{len(rows)} filters have other weights. Filters are ranked by how differently they respond to the "
               "images (1 - correlation), most changed first.")
    headings = ["rank", "filter", "weight distance", "correlation", "1 - correlation", f"{va}'s picture",
                f"{vb}'s picture", f"{va} fires most on", f"{vb} fires most on"]
    body = (f"<h1>Layer {layer}: version {va} against version {vb}</h1><p>{verdict}</p><p>"
            + "<br>".join(f"{side.upper()}: {html.escape(summary[side]['url'])}, version "
                          f"{html.escape(summary[side]['model_version'])}, weights: "
                          f"{html.escape(summary[side]['weights'])}" for side in "ab")
            + f"</p><p>{len(summary['images'])} images used, {len(summary['skipped'])} skipped.</p><ul>"
            + "".join(f"<li>{html.escape(s['file'])}: {html.escape(s['reason'])}</li>" for s in summary["skipped"])
            + '</ul><img src="histogram.png" alt="histograms of the changes" width="1000" height="320">'
            "<p>The correlation is over the images, of the filter's mean activation in A and in B (null where it is "
            f"constant). Pictures of the {sum(r['picture_a'] is not None for r in rows)} most changed filters: "
            f"visualize {html.escape(json.dumps(fields))}.</p><table><thead><tr>"
            + "".join(f"<th{' data-sort' if i < 5 else ''}>{h}</th>" for i, h in enumerate(headings))
            + "</tr></thead><tbody>" + "".join(row(i + 1, r, thumbnail_of) for i, r in enumerate(rows))
            + f"</tbody></table>{SORT}")
    with open(os.path.join(out, "index.html"), "w") as f:
        f.write(page(f"layer {layer}: {summary['a']['model_version']} against {summary['b']['model_version']}",
                     STYLE + body))
