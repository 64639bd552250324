"""The HTML report: one offline file whose charts draw in headless Chromium and whose numbers equal the JSON's."""

from __future__ import annotations

import html as markup
import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pipeline.report import build_report, render_html, render_json
from pipeline.report.model import Report
from tests.test_report_metrics import NOW, load_world
from tests.tools import chromium_binary, png_is_blank, png_rows_changed

_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
          "--disable-component-update", "--disable-sync",
          # Any request that leaves the machine fails at once: the page must need none.
          "--proxy-server=127.0.0.1:9"]
CHARTS = {"trend-engagement", "trend-unsubscribes", "lift", "topic-share", "learned-ctr"}

# Injected into a copy of the page only: the report itself carries no script.
_CATCH = ("<script>window.__errors=[];window.addEventListener('error',function(e){__errors.push(String(e.message||"
          "('failed to load '+(e.target&&(e.target.src||e.target.href)))))},true);</script>")
# Headless Chromium will not make its window narrower than 500 px, so the page is probed in an
# iframe of the width wanted (srcdoc: same origin, so the probe can measure inside it).
_PROBE = """<!doctype html><html><body style="margin:0">
<iframe id="page" style="border:0;width:%(width)dpx;height:900px" srcdoc="%(page)s"></iframe>
<script>
document.getElementById('page').addEventListener('load', function () {
  var frame = this.contentWindow, doc = this.contentDocument;
  var charts = Array.prototype.map.call(doc.querySelectorAll('svg.chart'), function (svg) {
    var box = svg.getBoundingClientRect();
    var marks = Array.prototype.filter.call(svg.querySelectorAll('.mark'), function (m) {
      var b = m.getBBox(); return b.width > 0 || b.height > 0; }).length;
    return {name: svg.dataset.chart, width: box.width, height: box.height, marks: marks};
  });
  var found = {errors: frame.__errors, charts: charts, innerWidth: frame.innerWidth,
               scrollWidth: doc.documentElement.scrollWidth,
               resources: frame.performance.getEntriesByType('resource').map(function (r) { return r.name; })};
  var out = document.createElement('pre'); out.id = 'probe'; out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
});
</script></body></html>"""


def _chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([chromium_binary(), *_FLAGS, f"--user-data-dir={profile}", *extra, url],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def report(db) -> Report:
    """The report of the known-answer world."""
    load_world(db)
    return build_report(db, now=NOW)


@pytest.fixture
def pages(report, tmp_path) -> dict[str, Path]:
    """The report as HTML and JSON, and a copy with the charts hidden."""
    html = render_html(report)
    paths = {name: tmp_path / f"{name}.html" for name in ("report", "hidden")}
    paths["report"].write_text(html, encoding="utf-8")
    paths["hidden"].write_text(html.replace("</style>", "svg.chart { visibility: hidden; }</style>", 1),
                               encoding="utf-8")
    paths["json"] = tmp_path / "report.json"
    paths["json"].write_text(render_json(report), encoding="utf-8")
    return paths


def _probe(page: Path, profile: Path, width: int) -> dict:
    """What the page does in Chromium at `width` px: errors, requests, chart sizes and marks, overflow."""
    probe = page.with_name(f"probe-{width}.html")
    caught = page.read_text(encoding="utf-8").replace("<head>", "<head>" + _CATCH, 1)
    probe.write_text(_PROBE % {"width": width, "page": markup.escape(caught, quote=True)}, encoding="utf-8")
    result = _chromium(probe.as_uri(), profile, f"--window-size={max(width, 500) + 20},900", "--dump-dom",
                       "--virtual-time-budget=2000")
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.DOTALL)
    assert found, result.stdout[-2000:]
    return json.loads(markup.unescape(found.group(1)))


class _Metrics(HTMLParser):
    """Every element with data-metric: name -> (data-value, text shown)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, tuple[str, str]] = {}
        self._open: list[tuple[str, str, list[str]]] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if "data-metric" in attributes:
            self._open.append((attributes["data-metric"], attributes["data-value"], []))

    def handle_data(self, data):
        if self._open:
            self._open[-1][2].append(data)

    def handle_endtag(self, tag):
        if tag == "span" and self._open:
            key, value, text = self._open.pop()
            assert key not in self.found, f"{key} shown twice"
            self.found[key] = (value, "".join(text).strip())


def expected_metrics(data: dict) -> dict[str, tuple[object, str]]:
    """Every number the page must show, from the JSON report: name -> (value, how it is shown)."""
    rates = {"ctr", "ctor", "unsubscribe_rate", "spam_rate", "bounce_rate", "click_share", "mean_learned_ctr",
             "pooled_learned_ctr", "response_rate", "share_served", "ctr_on_need"}
    found: dict[str, tuple[object, str]] = {}

    def add(prefix: str, row: dict, fields: list[str]) -> None:
        for name in fields:
            kind = "flag" if name.endswith("_flag") else "percent" if name in rates else "count"
            found[f"{prefix}.{name}"] = (row[name], kind)

    for e in data["editions"]:
        add(f"edition.{e['edition_id']}", e, [k for k in e if k not in ("edition_id", "first_sent_at")])
    for m in data["lift"]:
        for arm in ("personalised", "holdout"):
            add(f"lift.{m['edition_id']}.{arm}", m[arm], ["delivered", "clickers", "ctr"])
        for name in ("lift", "lift_low", "lift_high", "mde"):
            found[f"lift.{m['edition_id']}.{name}"] = (m[name], "signed")
    for m in data["responses"]:
        for arm in ("personalised", "holdout"):
            add(f"responses.{m['edition_id']}.{arm}", m[arm],
                ["sent", "asked", "answered", "replied", "responded", "response_rate"])
        for name in ("lift", "lift_low", "lift_high", "mde"):
            found[f"responses.{m['edition_id']}.{name}"] = (m[name], "signed")
    for n in data["needs_served"]:
        add(f"needs.{n['edition_id']}", n, ["readers_with_need", "served", "share_served", "clicked", "ctr_on_need"])
    for s in data["sections"]:
        add(f"section.{s['edition_id']}.{s['section_id']}", s, ["exposed", "clickers", "ctr"])
    for t in data["topics"]:
        add(f"topic.{t['edition_id']}.{t['topic']}", t, ["exposed", "clickers", "ctr", "click_share"])
    for i in data["interests"]:
        add(f"interest.{i['topic']}", i, ["readers", "declared", "opted_out", "exposed", "mean_learned_ctr",
                                          "pooled_learned_ctr"])
        for number, value in enumerate(i["buckets"]):
            found[f"interest.{i['topic']}.buckets.{number}"] = (value, "count")
    return found


def _shown_as(text: str, value: object, kind: str) -> bool:
    """Whether `text` on the page reads as `value` (to the page's precision)."""
    if value is None:
        return text == "—"
    if kind == "flag":
        return text == ("⚠ yes" if value else "no")
    if kind == "count":
        return re.fullmatch(r"\d{1,3}(,\d{3})*", text) is not None and int(text.replace(",", "")) == value
    pattern = r"[+-]\d+\.\d" if kind == "signed" else r"\d+\.\d\d"
    if not re.fullmatch(pattern + "%", text):
        return False
    return abs(float(text[:-1]) / 100 - value) <= (0.0005 if kind == "signed" else 0.00005) + 1e-12


def test_page_is_one_self_contained_file(pages):
    """The page has no script, no stylesheet link, no external URL: only inline CSS and inline SVG."""
    html = pages["report"].read_text()
    assert "<script" not in html and "<link" not in html and "@import" not in html and "url(" not in html
    assert not re.search(r'(src|href)\s*=', html)
    assert set(re.findall(r"https?://[^\"' )]+", html)) == {"http://www.w3.org/2000/svg"}  # the SVG namespace
    assert set(re.findall(r'data-chart="([^"]+)"', html)) == CHARTS
    assert "Evaluating &lt;AI&gt; features" in html and "<AI>" not in html


@pytest.mark.browser
def test_page_loads_in_chromium_without_console_errors_or_fetches(pages, tmp_path):
    """Chromium loads the page offline with nothing on its console, no page error and no request made."""
    result = _chromium(pages["report"].as_uri(), tmp_path / "profile", "--enable-logging=stderr", "--v=0",
                       "--dump-dom", "--virtual-time-budget=2000")
    assert result.returncode == 0 and "Engagement report" in result.stdout
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert console == []
    probe = _probe(pages["report"], tmp_path / "profile2", 1280)
    assert probe["errors"] == [] and probe["resources"] == []


@pytest.mark.browser
def test_charts_are_drawn_with_one_mark_per_datum(pages, tmp_path):
    """Every chart has a size on the page and draws exactly the marks its data calls for."""
    probe = _probe(pages["report"], tmp_path / "profile", 1280)
    charts = {chart["name"]: chart for chart in probe["charts"]}
    assert set(charts) == CHARTS
    assert all(c["width"] > 200 and c["height"] > 80 for c in charts.values())
    marks = {name: chart["marks"] for name, chart in charts.items()}
    # CTR and CTOR: 2 points and a line each (2026-11-23 has none); unsubscribe rate likewise; lift: a point
    # and an interval for 2026-12-07 and for all; topic shares: 3 topics in 2026-11-30, 4 in 2026-12-07;
    # learned CTR: ai and climate.
    assert marks == {"trend-engagement": 6, "trend-unsubscribes": 3, "lift": 4, "topic-share": 7, "learned-ctr": 2}


@pytest.mark.browser
def test_numbers_on_the_page_equal_the_json(pages, tmp_path):
    """Each number in Chromium's DOM carries the JSON report's exact value and reads as it; none is missing."""
    result = _chromium(pages["report"].as_uri(), tmp_path / "profile", "--dump-dom", "--virtual-time-budget=2000")
    assert result.returncode == 0, result.stderr[-2000:]
    parsed = _Metrics()
    parsed.feed(result.stdout)
    expected = expected_metrics(json.loads(pages["json"].read_text()))
    assert set(parsed.found) == set(expected)
    wrong = {key: (parsed.found[key], value) for key, (value, kind) in expected.items()
             if json.loads(parsed.found[key][0]) != value or not _shown_as(parsed.found[key][1], value, kind)}
    assert wrong == {}
    assert parsed.found["edition.2026-12-07.ctr"] == (json.dumps(5 / 9), "55.56%")
    assert parsed.found["edition.2026-12-07.clickers"] == ("5", "5")


@pytest.mark.browser
@pytest.mark.parametrize("width", [390, 1280])
def test_screenshots_show_the_charts_at_phone_and_laptop_width(pages, tmp_path, width):
    """At 390 and 1280 px the page is not blank, does not scroll sideways, and its charts change the pixels."""
    probe = _probe(pages["report"], tmp_path / "probe", width)
    assert probe["innerWidth"] == width and probe["scrollWidth"] <= width  # wide tables scroll in their box
    assert all(0 < chart["width"] <= width for chart in probe["charts"])
    shots = {}
    for name, page in (("report", pages["report"]), ("again", pages["report"]), ("hidden", pages["hidden"])):
        shots[name] = tmp_path / f"{name}.png"
        result = _chromium(page.as_uri(), tmp_path / f"profile-{name}", f"--window-size={width},1600",
                           "--virtual-time-budget=3000", f"--screenshot={shots[name]}")
        assert shots[name].exists(), result.stderr[-2000:]
    assert not png_is_blank(shots["report"])
    # The same page twice gives nearly the same image, so a difference well beyond that is the charts'
    # doing. Measured: hiding the charts changes 18% (390 px) and 24% (1280 px) of the scanlines; the
    # same page twice, 0% on a quiet machine and up to 2.2% on a loaded one (a line drawn a frame later).
    noise = png_rows_changed(shots["report"], shots["again"])
    charts = png_rows_changed(shots["report"], shots["hidden"])
    assert noise <= 0.05 and charts >= 0.10 and charts >= 4 * noise


def test_empty_report_renders_without_charts(db):
    """With nothing sent the page says so and draws no chart."""
    html = render_html(build_report(db, now=NOW))
    assert "nothing has been sent" in html and "<svg" not in html and "data-metric" not in html


# Measures, inside the page at a given width: sideways overflow of the page and of every table box,
# and every pair of chart labels whose boxes overlap (the lift axis once printed "0" over "-100%").
_LAYOUT = """<!doctype html><html><body style="margin:0">
<iframe id="page" style="border:0;width:%(width)dpx;height:900px" srcdoc="%(page)s"></iframe>
<script>
document.getElementById('page').addEventListener('load', function () {
  var frame = this.contentWindow, doc = this.contentDocument;
  var boxes = Array.prototype.map.call(doc.querySelectorAll('.scroll'), function (box) {
    return {scrollWidth: box.scrollWidth, clientWidth: box.clientWidth,
            columns: Array.prototype.map.call(box.querySelectorAll('thead th'), function (th) { return th.textContent; }).join('|')}; });
  var overlaps = [], labels = 0;
  Array.prototype.forEach.call(doc.querySelectorAll('svg.chart'), function (svg) {
    var texts = Array.prototype.map.call(svg.querySelectorAll('text'), function (t) {
      return {text: t.textContent, box: t.getBoundingClientRect()}; });
    labels += texts.length;
    var frameBox = svg.getBoundingClientRect();
    texts.forEach(function (a, i) {
      if (a.box.left < frameBox.left - 0.5 || a.box.right > frameBox.right + 0.5)
        overlaps.push([svg.dataset.chart, a.text, 'outside the chart']);
      texts.slice(i + 1).forEach(function (b) {
        var x = Math.min(a.box.right, b.box.right) - Math.max(a.box.left, b.box.left);
        var y = Math.min(a.box.bottom, b.box.bottom) - Math.max(a.box.top, b.box.top);
        if (x > 0.5 && y > 0.5) overlaps.push([svg.dataset.chart, a.text, b.text]);
      });
    });
  });
  var found = {innerWidth: frame.innerWidth, scrollWidth: doc.documentElement.scrollWidth, boxes: boxes,
               overlaps: overlaps, labels: labels, charts: doc.querySelectorAll('svg.chart').length};
  var out = document.createElement('pre'); out.id = 'probe'; out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
});
</script></body></html>"""


@pytest.fixture
def answered_report(db) -> Report:
    """The known-answer world, where some readers of each arm also answered the ask, so every chart draws."""
    from sqlalchemy import select

    from pipeline.store.models import AskAnswer, SendLedgerEntry

    load_world(db)
    with db.session() as session:
        rows = session.execute(select(SendLedgerEntry.edition_id, SendLedgerEntry.reader_id, SendLedgerEntry.holdout)
                               .where(SendLedgerEntry.state == "sent")).all()
        taken = {True: 0, False: 0}
        for edition_id, reader_id, holdout in rows:
            if taken[holdout] < (1 if holdout else 3):
                taken[holdout] += 1
                session.add(AskAnswer(reader_id=reader_id, edition_id=edition_id, topic="hiring", until=NOW.date(),
                                      answered_at=NOW))
    return build_report(db, now=NOW)


@pytest.mark.browser
def test_report_fits_1280_px_and_no_chart_labels_overlap(answered_report, tmp_path):
    """At 1280 px nothing scrolls sideways (the page nor any table) and no two chart labels overlap."""
    page = tmp_path / "report.html"
    page.write_text(render_html(answered_report), encoding="utf-8")
    assert 'data-chart="response-lift"' in page.read_text(encoding="utf-8")
    probe_page = tmp_path / "layout.html"
    probe_page.write_text(_LAYOUT % {"width": 1280, "page": markup.escape(page.read_text(encoding="utf-8"),
                                                                          quote=True)}, encoding="utf-8")
    result = _chromium(probe_page.as_uri(), tmp_path / "profile", "--window-size=1300,900", "--dump-dom",
                       "--virtual-time-budget=2000")
    found = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.DOTALL)
    assert found, result.stderr[-2000:]
    probe = json.loads(markup.unescape(found.group(1)))
    assert probe["innerWidth"] == 1280 and probe["scrollWidth"] <= probe["innerWidth"]
    assert [b for b in probe["boxes"] if b["scrollWidth"] > b["clientWidth"]] == [], [b for b in probe["boxes"] if b["scrollWidth"] > b["clientWidth"]]
    assert probe["charts"] == 6 and probe["labels"] > 30
    assert probe["overlaps"] == [], probe["overlaps"]


def test_lift_axis_labels_never_print_over_each_other():
    """An interval from -100% to +5000% keeps its 0 label and drops the end label it would overwrite."""
    from pipeline.report.charts import interval_chart

    svg = str(interval_chart("lift", "Lift", [("2026-12-07", 0.5, -1.0, 50.0)]))
    axis = re.findall(r'<text x="[^"]+" y="[^"]+" text-anchor="(?:start|middle|end)" font-size="12">([^<]*)</text>', svg)
    assert "0%" in axis and "+5000%" in axis and "-100%" not in axis
