"""The offline docs site (tools/build_docs.py) and the README generator (tools/build_readme.py).

Builds the real notebooks and a small fixture project into temporary folders and checks the pages, the sidebar,
the plotly figures (drawn with ONE local plotly.min.js) and that no page loads anything from the network.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import plotly.graph_objects as go
import plotly.io as pio
import pytest

REPO = Path(__file__).resolve().parent.parent
NBS = REPO / "nbs"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


build_docs = _load("build_docs")
build_readme = _load("build_readme")

# anything a browser would fetch by itself: scripts, stylesheets, fonts, pictures, frames (plain <a href> is fine)
REMOTE_LOAD = re.compile(
    r"""<(?:script|link|img|iframe|source|video|audio|embed|track|object)\b[^>]*\b(?:src|href|data)\s*=\s*["']?(?:https?:)?//"""
    r"""|@import\s+(?:url\()?\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|\bimport\s[^;]*from\s*["'](?:https?:)?//""",
    re.IGNORECASE,
)


def run_build(nbs: Path, tmp: Path) -> tuple[Path, str]:
    "Build the site for `nbs` into tmp/site (processed notebooks in tmp/proc); return the site and the output."
    out = tmp / "site"
    r = subprocess.run(
        [sys.executable, str(REPO / "tools" / "build_docs.py"), "--nbs", str(nbs), "--proc", str(tmp / "proc"), "--out", str(out)],
        check=False, capture_output=True, text=True, timeout=180, cwd=tmp,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"built \d+ page\(s\) .* in \d+\.\d s", r.stdout), r.stdout
    return out, r.stdout + r.stderr


def check_offline(site: Path) -> None:
    "No page or stylesheet of the site loads anything from the network."
    bad = {}
    for f in [*site.rglob("*.html"), *site.rglob("*.css")]:
        hits = REMOTE_LOAD.findall(f.read_text(encoding="utf-8", errors="replace"))
        if hits:
            bad[str(f.relative_to(site))] = hits[:3]
    assert not bad, f"pages that load from the network: {bad}"


def check_one_plotly(site: Path) -> None:
    "plotly.js is in the site exactly once, at site_libs/plotly/plotly.min.js, and no page inlines it."
    copies = [
        p.relative_to(site).as_posix()
        for p in site.rglob("*.js")
        if "plotly" in p.name.lower()
    ]
    assert copies == [build_docs.PLOTLY_JS], copies
    for page in site.rglob("*.html"):
        assert "* plotly.js v" not in page.read_text(encoding="utf-8"), (
            f"{page.name} inlines plotly.js"
        )


def plotly_loads(page: Path) -> list[str]:
    "The plotly.js script paths a page loads."
    return re.findall(
        r"""<script[^>]*\bsrc=["']([^"']*plotly[^"']*\.js)["']""",
        page.read_text(encoding="utf-8"),
    )


# ----------------------------------------------------------------------------- the real notebooks


@pytest.fixture(scope="module")
def real_site(tmp_path_factory) -> Path:
    return run_build(NBS, tmp_path_factory.mktemp("real"))[0]


def test_every_notebook_has_a_page(real_site):
    notebooks = build_docs.find_notebooks(NBS)
    assert notebooks, "nbs/ has no notebooks"
    for nb in notebooks:
        page = real_site / build_docs.page_name(nb)
        assert page.is_file(), f"{nb} has no page {page.name}"
        html = page.read_text(encoding="utf-8")
        assert "<main" in html and "</html>" in html


def test_sidebar_lists_every_notebook_in_order(real_site):
    "Home, then the sections Tutorial, Library, Command line; every notebook once, in path order inside its section."
    found = build_docs.find_notebooks(NBS)
    # sections by page name, as the site build does (`20_cli_train.ipynb` is the page cli_train, in Command line)
    notebooks = [n for sec in (None, *build_docs.SECTIONS) for n in found if build_docs.section_of(build_docs.page_name(n).with_suffix(".ipynb")) == sec]
    assert build_docs.section_of(notebooks[1]) == "Tutorial"  # the tutorial comes first after the home page
    html = (real_site / "index.html").read_text(encoding="utf-8")
    side = html[html.index('id="quarto-sidebar"') :]
    heads = [h for h in re.findall(r">\s*(Tutorial|Library|Command line)\s*<", side)]
    assert heads[:3] == list(build_docs.SECTIONS), heads
    for nb in notebooks:
        html = (real_site / build_docs.page_name(nb)).read_text(encoding="utf-8")
        side = html[html.index('id="quarto-sidebar"') :]
        links = re.findall(
            r'<a href="([^"]+)" class="sidebar-item-text sidebar-link', side
        )
        links = [re.sub(r"^(\.\./)+", "", link) for link in links]
        links = ["index.html" if link in ("./", "") else link for link in links]
        assert links == [build_docs.page_name(n).as_posix() for n in notebooks], (
            nb,
            links,
        )


def test_real_site_is_offline(real_site):
    check_offline(real_site)
    check_one_plotly(real_site)


def test_real_plotly_outputs_render_locally(real_site):
    "Each notebook that saved a plotly figure gets a plot div per figure and loads the site's plotly.min.js."
    for nb in build_docs.find_notebooks(NBS):
        cells = json.loads((NBS / nb).read_text(encoding="utf-8"))["cells"]
        n = sum(
            build_docs.PLOTLY_MIME in (o.get("data") or {})
            for c in cells
            for o in c.get("outputs", [])
        )
        page = real_site / build_docs.page_name(nb)
        html = page.read_text(encoding="utf-8")
        if n:
            assert html.count('class="plotly-graph-div"') >= 1, nb
            (src,) = plotly_loads(page)
            assert (page.parent / src).resolve() == (
                real_site / build_docs.PLOTLY_JS
            ).resolve()


# ----------------------------------------------------------------------------- a fixture project


def _code(src: str, outputs=()) -> nbformat.NotebookNode:
    c = nbformat.v4.new_code_cell(src)
    c.outputs = list(outputs)
    return c


def _plot_output(spec: dict) -> nbformat.NotebookNode:
    "A display_data output as JupyterLab saves a plotly figure (plus the text/html fallback plotly adds)."
    return nbformat.v4.new_output(
        "display_data",
        data={
            build_docs.PLOTLY_MIME: spec,
            "text/html": '<script src="https://cdn.plot.ly/plotly-3.0.0.min.js"></script><div>fallback</div>',
            "text/plain": "Figure(...)",
        },
    )


def _write(nb_dir: Path, name: str, cells) -> None:
    nb = nbformat.v4.new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {
                "name": "python3",
                "language": "python",
                "display_name": "Python 3",
            }
        },
    )
    (nb_dir / name).parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, nb_dir / name)


@pytest.fixture(scope="module")
def fixture_site(tmp_path_factory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("fixture")
    nbs = tmp / "nbs"
    md = nbformat.v4.new_markdown_cell
    _write(
        nbs,
        "index.ipynb",
        [md("# Fixture home\n\n> The home page."), _code("#| hide\nimport os")],
    )
    scatter = go.Figure(
        go.Scatter(x=[1, 2, 3, 4], y=[10, 11, 9, 14], mode="lines+markers", name="f1")
    )
    scatter.update_layout(title="Validation macro-F1", height=380)
    # saved through to_json below: typed arrays ("bdata"), as plotly writes them
    bars = go.Figure(go.Bar(x=["a", "b", "c"], y=[0.3, 0.5, 0.2]))
    _write(nbs, "01_plots.ipynb", [
        md("# Plots\n\n> Two figures."),  # nbdev turns the title cell into front matter
        md("Maths: $$a^2 + b^2 = c^2$$ and a [plain link](https://example.org/docs).\n\n![remote picture](https://example.org/pic.png)"),
        _code("#| hide\nSECRET_HIDDEN_CELL = 1"),
        _code("#| export\nSECRET_EXPORT_CELL = 2"),
        _code("print('hello from a stream')", [nbformat.v4.new_output("stream", name="stdout", text="hello from a stream\n")]),
        _code("fig", [_plot_output(scatter.to_plotly_json())]),
        _code("#| echo: false\nbars", [_plot_output(json.loads(pio.to_json(bars)))]),
    ])  # fmt: skip
    _write(
        nbs,
        "sub/02_more.ipynb",
        [
            md("# More\n\n> A page in a folder."),
            _code("fig", [_plot_output(scatter.to_plotly_json())]),
        ],
    )
    _write(
        nbs,
        "03_plain.ipynb",
        [
            md("# Plain\n\n> No figure here."),
            _code(
                "1 + 1",
                [
                    nbformat.v4.new_output(
                        "execute_result", data={"text/plain": "2"}, execution_count=1
                    )
                ],
            ),
        ],
    )
    return run_build(nbs, tmp)


def test_fixture_pages_and_cells(fixture_site):
    site, log = fixture_site
    assert "built 4 page(s) (2 with plotly figures)" in log
    for p in ("index.html", "plots.html", "sub/more.html", "plain.html"):
        assert (site / p).is_file(), p
    plots = (site / "plots.html").read_text(encoding="utf-8")
    assert "hello from a stream" in plots and "print" in plots  # code and its output
    # #| hide and #| export cells are gone; #| echo: false hides the code, keeps the figure
    assert "SECRET_HIDDEN_CELL" not in plots and "SECRET_EXPORT_CELL" not in plots
    assert ">bars<" not in plots and plots.count("cell-code") == 2
    assert '<a href="https://example.org/docs"' in plots  # a plain hyperlink stays
    assert '<math alttext="a^2 + b^2 = c^2"' in plots  # maths drawn as MathML, without the CDN renderer
    assert "\\(" not in plots and "\\[a^2" not in plots


def test_fixture_plotly_figures_use_the_local_plotly(fixture_site):
    site, _ = fixture_site
    check_one_plotly(site)
    for page, n in (("plots.html", 2), ("sub/more.html", 1)):
        html = (site / page).read_text(encoding="utf-8")
        assert html.count('class="plotly-graph-div"') == n, page
        assert html.count("Plotly.newPlot(") == n, page
        # the bundle's own text/html (a CDN script) is not used
        assert "fallback" not in html
        (src,) = plotly_loads(site / page)
        assert not src.startswith(("http", "//", "/")), src
        assert ((site / page).parent / src).resolve() == (
            site / build_docs.PLOTLY_JS
        ).resolve()
    assert "Validation macro-F1" in (site / "plots.html").read_text(encoding="utf-8")
    assert (
        plotly_loads(site / "plain.html") == []
        and plotly_loads(site / "index.html") == []
    )


def test_fixture_site_is_offline(fixture_site):
    site, log = fixture_site
    check_offline(site)
    assert "katex dropped: 1 formula(s) rendered as mathml" in log.lower()  # the build says what it did instead


def test_real_site_has_no_source_links_and_scrolls_code(real_site):
    for page in real_site.rglob("*.html"):
        assert "github.com/dataaug-multi-both" not in page.read_text(encoding="utf-8"), page.name
    assert "overflow-x: auto" in (real_site / "styles.css").read_text(encoding="utf-8")
    assert "<math" in (real_site / "losses.html").read_text(encoding="utf-8")


def test_remote_load_pattern_catches_what_it_should():
    "The offline check itself finds remote loads, and lets plain links through."
    assert REMOTE_LOAD.search('<script src="https://cdn.example.org/x.js"></script>')
    assert REMOTE_LOAD.search('<link rel="stylesheet" href="//fonts.example.org/css">')
    assert REMOTE_LOAD.search(
        "@import url(https://fonts.googleapis.com/css2?family=X);"
    )
    assert REMOTE_LOAD.search('<img class="x" src="http://example.org/p.png">')
    assert not REMOTE_LOAD.search('<a href="https://example.org">docs</a>')
    assert not REMOTE_LOAD.search(
        '<script src="site_libs/plotly/plotly.min.js"></script>'
    )


def test_strip_remote_css_keeps_the_rest():
    "Removing a web-font import must not eat the rules after it (its URL holds `;`)."
    css = '@charset "UTF-8";@import url(https://fonts.example.org/css2?family=A:wght@300;400;700&display=swap);:root{--x:1}'
    text, n = build_docs.strip_remote_css(css)
    assert (text, n) == ('@charset "UTF-8";:root{--x:1}', 1)
    text, n = build_docs.strip_remote_css(
        "@import 'https://x.org/a.css' screen;b{c:d}@font-face{src:url(https://x.org/f.woff2)}"
    )
    assert (text, n) == ("b{c:d}@font-face{src:none}", 2)


def test_real_theme_css_is_intact(real_site):
    "The theme stylesheet lost only its web-font import: its variables and rules are all still there."
    import smalldocs

    src = (
        Path(smalldocs.__file__).parent
        / "assets"
        / "vendor"
        / "bootswatch"
        / "cosmo.min.css"
    )
    ours = (real_site / "site_libs" / "themes" / "cosmo.min.css").read_text(
        encoding="utf-8"
    )
    assert (
        ":root,[data-bs-theme=light]{--bs-blue:" in ours and "display=swap" not in ours
    )
    assert len(src.read_text(encoding="utf-8")) - len(ours) < 200


def test_build_refuses_a_foreign_output_folder(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "precious.txt").write_text("not a site")
    r = subprocess.run(
        [sys.executable, str(REPO / "tools" / "build_docs.py"), "--nbs", str(NBS), "--proc", str(tmp_path / "proc"), "--out", str(tmp_path / "site")],
        check=False, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (
        r.returncode == 2
        and r.stderr.startswith("error: ")
        and len(r.stderr.strip().splitlines()) == 1
    ), r.stderr
    assert (tmp_path / "site" / "precious.txt").read_text() == "not a site"


# ----------------------------------------------------------------------------- README


def test_readme_from_notebook(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# proj\n\n> One line."),
        _code("#| hide\nfrom proj.core import *"),
        nbformat.v4.new_markdown_cell("## Install\n\nRun it:"),
        _code("#| eval: false\nprint(1 + 1)", [nbformat.v4.new_output("stream", name="stdout", text="2\n")]),
        _code("#| echo: false\nx", [nbformat.v4.new_output("execute_result", data={"text/plain": "'only output'"}, execution_count=2)]),
        _code("#| include: false\nsecret = 1"),
    ])  # fmt: skip
    nbformat.write(nb, tmp_path / "index.ipynb")
    out = tmp_path / "README.md"
    args = ["--nb", str(tmp_path / "index.ipynb"), "--out", str(out)]
    assert build_readme.main(args) == 0
    assert out.read_text() == (
        "# proj\n\n"
        + build_readme.HEADER
        + "\n> One line.\n\n## Install\n\nRun it:\n\n"
        "```python\nprint(1 + 1)\n```\n\n```\n2\n```\n\n```\n'only output'\n```\n"
    )
    assert build_readme.main([*args, "--check"]) == 0
    out.write_text("stale")
    assert build_readme.main([*args, "--check"]) == 1
    assert (
        build_readme.main(["--nb", str(tmp_path / "missing.ipynb"), "--out", str(out)])
        == 2
    )


# ----------------------------------------------------------------------------- in a real browser

from browser import keep_screenshot, leaving, needs_chromium, render  # noqa: E402


@needs_chromium
@pytest.mark.parametrize("name", ["losses.html", "plots.html"])
def test_pages_render_offline_in_chromium(real_site, tmp_path, name):
    "Headless Chromium draws the page (maths as MathML, plotly figures as SVG), and no request leaves the machine."
    r = render(real_site / name, tmp_path / f"docs_{name}.png")
    keep_screenshot(tmp_path / f"docs_{name}.png")
    assert leaving(r["requests"]) == [], leaving(r["requests"])
    assert r["errors"] == [], r["errors"]
    f = r["facts"]
    assert "Library" in f["text"] and "Command line" in f["text"] and "Tutorial" in f["text"]
    assert all(o in ("auto", "scroll") for o in f["wide_pre"]), f["wide_pre"]  # wide code scrolls, nothing is cut off
    if name == "losses.html":
        assert f["math"] >= 2
    if name == "plots.html":
        assert f["plotly_divs"] >= 1 and f["plotly_drawn"] == f["plotly_divs"]
