#!/usr/bin/env python
"""Build the docs site from the notebooks, offline and without Quarto.

    python tools/build_docs.py [--nbs nbs] [--proc _proc] [--out _docs] [--quiet]

Pipeline:
1. nbdev's own notebook processors (the ones `nbdev_docs` runs before Quarto) turn each `nbs/**/*.ipynb` into a
   processed notebook in `_proc/`: `#| hide`/`#| export` cells removed, `show_doc` cells added after exported
   symbols, the title cell turned into front matter, backticked names linked. The one change: instead of running
   the notebook's cells in a kernel to render `show_doc` (nbdev's `exec_show_docs`, which breaks on cells that mix
   imports with notebook-local names), the symbols are documented from the exported library modules.
2. Plotly figures saved as `application/vnd.plotly.v1+json` (the JupyterLab mime type) become a `<div>` and a
   `Plotly.newPlot(...)` call; nothing of plotly.js is inlined.
3. smalldocs renders `_proc/` (a `_quarto.yml` written here from settings.ini, with every notebook in the sidebar,
   grouped: the home page, Tutorial, Library, Command line) into `_docs/`, with `styles.css` (code blocks scroll
   sideways instead of being cut off).
4. Post-processing: plotly.min.js from the installed plotly package is copied once into
   `_docs/site_libs/plotly/`, and pages with a figure load it by a relative path; every http(s) resource that a page
   or stylesheet would fetch (web fonts, CDN scripts such as KaTeX) is removed, maths (`$...$`, `$$...$$`) becomes
   MathML at build time (latex2mathml; browsers draw it natively, no script), links to the site's own `doc_host`
   become relative, and "source" links to the (placeholder) git repository are removed.

Writes only under the --proc and --out folders.
"""

from __future__ import annotations

import argparse
import ast
import configparser
import importlib
import json
import os
import posixpath
import re
import shutil
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PLOTLY_MIME = "application/vnd.plotly.v1+json"
PLOTLY_JS = "site_libs/plotly/plotly.min.js"  # where the site keeps plotly.js, relative to the output root
MARKER = ".build_docs"  # marks a --proc folder as ours, so a rebuild may empty it


class DocsError(Exception):
    "A build that cannot go on; the message says what is wrong and how to fix it."


# ----------------------------------------------------------------------------- names and settings


def page_name(rel: Path) -> Path:
    "The page a notebook becomes, as nbdev names it: `00_core.ipynb` -> `core.html`, `index.ipynb` -> `index.html`."
    return rel.with_name(
        re.sub(r"^\d+[a-zA-Z0-9]*_", "", rel.name.lower())
    ).with_suffix(".html")


def find_notebooks(nbs: Path) -> list[Path]:
    "Every notebook under `nbs` (relative paths), `index.ipynb` first, the rest in path order; `_`/`.` folders skipped."
    found = [
        p.relative_to(nbs)
        for p in nbs.rglob("*.ipynb")
        if not any(part.startswith((".", "_")) for part in p.relative_to(nbs).parts)
    ]
    return sorted(found, key=lambda p: (p != Path("index.ipynb"), p.parts[:-1], p.name))


def settings() -> dict:
    "The [DEFAULT] section of settings.ini."
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(REPO / "settings.ini")
    return dict(cp["DEFAULT"])


def site_url(cfg: dict) -> str:
    "The site's own URL (doc_host + doc_baseurl), which nbdev writes into symbol links."
    return (
        cfg.get("doc_host", "").rstrip("/")
        + "/"
        + cfg.get("doc_baseurl", "/").strip("/")
    )


# ----------------------------------------------------------------------------- step 1: nbdev processing


def _resolve(module, name: str):
    "Look up a dotted name such as `Class.method` in a module."
    obj = module
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _markdown_output(md: str):
    "An execute_result output holding Markdown, in the attribute-dict form nbdev's processors expect."
    from fastcore.xtras import dict2obj

    return dict2obj(
        {
            "output_type": "execute_result",
            "execution_count": None,
            "metadata": {},
            "data": {"text/markdown": md.splitlines(True)},
        }
    )


class _Short:
    "A default value whose repr is cut short, for a readable signature."

    def __init__(self, v):
        self.r = repr(v)

    def __repr__(self):
        return self.r if len(self.r) <= 40 else self.r[:37] + "..."


def fallback_doc(obj, name: str) -> str:
    "Signature and docstring as Markdown, for a symbol nbdev's `show_doc` cannot render (e.g. an array default)."
    import inspect

    try:
        sig = inspect.signature(obj)
        sig = str(
            sig.replace(
                parameters=[
                    p if p.default is p.empty else p.replace(default=_Short(p.default))
                    for p in sig.parameters.values()
                ]
            )
        )
    except (TypeError, ValueError):
        sig = ""
    doc = inspect.getdoc(obj) or ""
    return f"---\n\n### {name}\n\n>      {name} {sig}\n\n" + (
        f"*{doc}*\n" if doc else ""
    )


def make_filters(lib_name: str, notes: list[str]):
    "nbdev's `FilterDefaults` with `exec_show_docs` replaced by documenting symbols from the exported modules."
    from nbdev.processors import (
        FilterDefaults,
        Processor,
        _default_exp,
        _get_nm,
        _show_docs,
        exec_show_docs,
    )
    from nbdev.showdoc import show_doc

    class lib_show_docs(Processor):
        "Fill each `show_doc(name)` cell from the library module the name was exported to; never run notebook code."

        def begin(self):
            self.default = _default_exp(self.nb)
            self.stem = getattr(self.nb, "path_", "")
            self.module_of: dict[str, str] = {}
            # which module each exported cell's names went to
            for cell in self.nb.cells:
                d = getattr(cell, "directives_", {}) or {}
                targets = [
                    (d[k] or [self.default])[0]
                    for k in ("export", "exports", "exporti")
                    if k in d
                ]
                if not targets or not cell.source:
                    continue
                try:
                    tree = ast.parse(cell.source)
                except SyntaxError:
                    continue
                for t in ast.walk(tree):
                    if isinstance(
                        t, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
                    ):
                        self.module_of.setdefault(t.name, targets[0])

        def _module(self, name: str):
            mod = self.module_of.get(name.split(".")[0], self.default)
            if mod is None:
                raise LookupError("the notebook has no #| default_exp")
            return importlib.import_module(f"{lib_name}.{mod}")

        def cell(self, cell):
            if (
                cell.cell_type != "code"
                or not cell.source
                or "show_doc" not in cell.source
            ):
                return
            if cell.get("outputs") and not getattr(cell, "has_sd", False):
                return  # a hand-written show_doc cell saved with its output: keep what the author saw
            try:
                trees = ast.parse(re.sub(r"(?m)^\s*#\|.*$", "", cell.source)).body
            except SyntaxError:
                return
            calls = _show_docs(trees)
            if not calls:
                return
            outs = []
            for t in calls:
                name = _get_nm(t)
                try:
                    obj = _resolve(self._module(name), name)
                except Exception as e:  # noqa: BLE001 - a symbol that cannot be found must not stop the site
                    notes.append(
                        f"{self.stem}: show_doc({name}) left out: {type(e).__name__}: {e}"
                    )
                    continue
                try:
                    md = show_doc(obj)._repr_markdown_()
                except Exception as e:  # noqa: BLE001 - nbdev's renderer fails on some signatures: show the plain one
                    notes.append(
                        f"{self.stem}: show_doc({name}) shown without parameter table ({type(e).__name__}: {e})"
                    )
                    md = fallback_doc(obj, name)
                outs.append(_markdown_output(md))
            if outs:
                cell["outputs"] = outs
            else:
                del cell["source"]  # nbdev drops cells without a source

    class OfflineFilters(FilterDefaults):
        def base_procs(self):
            return [
                lib_show_docs if p is exec_show_docs else p
                for p in super().base_procs()
            ]

    return OfflineFilters()


# ----------------------------------------------------------------------------- step 2: plotly outputs

_INLINE_PLOTLY = re.compile(
    r"<script[^>]*>\s*/\*\*\s*\*\s*plotly\.js v.*?</script>", re.DOTALL
)


def plotly_html(spec: dict, div_id: str) -> str:
    "A div and the `Plotly.newPlot` call that draws a figure spec (`data`, `layout`, `config`) with the site's plotly.js."
    data, layout = spec.get("data", []), spec.get("layout", {})
    # offline: no "send to Chart Studio" button (plotly.js 4 shows one by default), no plotly logo link
    config = {
        "responsive": True,
        **(spec.get("config") or {}),
        "displaylogo": False,
        "showSendToCloud": False,
    }
    config.pop("plotlyServerURL", None)
    height = (
        layout.get("height") if isinstance(layout.get("height"), (int, float)) else 450
    )
    args = ", ".join(
        json.dumps(x, separators=(",", ":")) for x in (data, layout, config)
    )
    # the JSON cannot close the script
    args = args.replace("</", "<\\/").replace("<!--", "<\\!--")
    return (
        f'<div id="{div_id}" class="plotly-graph-div" style="height:{int(height)}px; width:100%;"></div>\n'
        f'<script>if (window.Plotly) {{ Plotly.newPlot("{div_id}", {args}); }}'
        f' else {{ document.getElementById("{div_id}").textContent = "plotly.js did not load"; }}</script>'
    )


def convert_plotly(nb, stem: str) -> int:
    "Replace each plotly mime bundle with HTML that uses the site's plotly.js; drop plotly.js inlined in HTML outputs."
    n = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = out.get("data") or {}
            if PLOTLY_MIME in data:
                spec = data[PLOTLY_MIME]
                spec = (
                    json.loads("".join(spec))
                    if isinstance(spec, (str, list))
                    else dict(spec)
                )
                out["data"] = {
                    "text/html": plotly_html(
                        spec, f"plotly-{re.sub(r'[^a-z0-9]+', '-', stem.lower())}-{n}"
                    )
                }
                n += 1
            elif "text/html" in data:
                h = (
                    "".join(data["text/html"])
                    if isinstance(data["text/html"], list)
                    else data["text/html"]
                )
                if "plotly.js v" in h:
                    data["text/html"] = _INLINE_PLOTLY.sub("", h)
    return n


def _plain(o):
    "An attribute dict (what execnb reads) as plain JSON types, recursively."
    if isinstance(o, dict):
        return {k: _plain(v) for k, v in o.items()}
    from fastcore.foundation import L

    if isinstance(o, (list, tuple, L)):
        return [_plain(v) for v in o]
    return o


# ----------------------------------------------------------------------------- step 3: the smalldocs project


SECTIONS = ("Tutorial", "Library", "Command line")


def section_of(page: Path) -> str | None:
    "The sidebar section of a page: None for the home page, Tutorial, Command line (cli_*), else Library."
    if page.as_posix() == "index.ipynb":
        return None
    if "tutorial" in page.stem:
        return "Tutorial"
    return "Command line" if page.stem.startswith("cli_") else "Library"


def sidebar(pages: list[Path]) -> list:
    "The sidebar's contents: the home page, then one section per group that has pages, in SECTIONS order."
    out: list = [p.as_posix() for p in pages if section_of(p) is None]
    for sec in SECTIONS:
        group = [p.as_posix() for p in pages if section_of(p) == sec]
        if group:
            out.append({"section": sec, "contents": group})
    return out


SITE_CSS = """
/* tools/build_docs.py: wide code and outputs scroll sideways instead of being cut off */
pre, div.sourceCode, .cell-output pre { overflow-x: auto; }
pre code, pre.sourceCode code { white-space: pre; }
math[display="block"] { overflow-x: auto; max-width: 100%; }
"""


def quarto_yml(cfg: dict, pages: list[Path], out: Path, css: str | None) -> dict:
    "The site config smalldocs reads: nbdev's defaults, the notebooks grouped in the sidebar, no remote services."
    html_opts = {"theme": "cosmo", "toc": True, "code-copy": True}
    if css:
        html_opts["css"] = css
    return {
        "project": {"type": "website", "output-dir": str(out)},
        "format": {"html": html_opts},
        "website": {
            "title": cfg.get("title") or cfg.get("lib_name", "docs"),
            "description": cfg.get("description", ""),
            "navbar": {"background": "primary", "search": True},
            "sidebar": {"style": "floating", "contents": sidebar(pages)},
        },
    }


# ----------------------------------------------------------------------------- step 4: offline post-processing

_REMOTE = r"""["']?(?:https?:)?//"""
_REMOTE_TAGS = [  # (what, pattern) for things a browser would fetch from the network
    (
        "script",
        re.compile(
            r"<script\b[^>]*\bsrc\s*=\s*" + _REMOTE + r"[^>]*>.*?</script>",
            re.DOTALL | re.IGNORECASE,
        ),
    ),
    (
        "module import",
        re.compile(
            r"""<script\b[^>]*type=["']module["'][^>]*>[^<]*\bimport\b[^<]*["'](?:https?:)?//[^<]*</script>""",
            re.DOTALL | re.IGNORECASE,
        ),
    ),
    (
        "link",
        re.compile(r"<link\b[^>]*\bhref\s*=\s*" + _REMOTE + r"[^>]*>", re.IGNORECASE),
    ),
    (
        "embed",
        re.compile(
            r"<(?:img|iframe|source|video|audio|embed)\b[^>]*\bsrc\s*=\s*"
            + _REMOTE
            + r"[^>]*>",
            re.IGNORECASE,
        ),
    ),
]
_CSS_REMOTE = re.compile(  # the URL may hold `;` (Google Fonts' `wght@300;400`), so match url(...) or "..." whole
    r"""@import\s+(?:url\(\s*["']?(?:https?:)?//[^)]*\)|["'](?:https?:)?//[^"']*["'])[^;]*;""",
    re.IGNORECASE,
)
_CSS_URL = re.compile(r"url\(\s*[\"']?(?:https?:)?//[^)]*\)", re.IGNORECASE)


def strip_remote(text: str) -> tuple[str, list[str]]:
    "Remove every element of an HTML page that would load something from the network; say what went."
    gone = []
    for what, pat in _REMOTE_TAGS:
        for m in pat.findall(text):
            url = re.search(
                r"""(?:src|href|from|import)\s*=?\s*["']?((?:https?:)?//[^"'\s>]+)""", m
            )
            gone.append(f"{what} {url.group(1) if url else m[:80]}")
        text = pat.sub("", text)
    return text, gone


def strip_remote_css(text: str) -> tuple[str, int]:
    "Remove `@import` of remote stylesheets (web fonts) and remote `url(...)` from CSS."
    text, n = _CSS_REMOTE.subn("", text)
    text, m = _CSS_URL.subn("none", text)
    return text, n + m


_MATH = re.compile(r'<span class="math (inline|display)">\\[(\[](.*?)\\[)\]]</span>', re.DOTALL)
_SOURCE_LINK = re.compile(r'<a href="https?://github\.com/[^"]*"[^>]*>source</a>')


def mathml(text: str) -> tuple[str, int]:
    "Replace the maths smalldocs leaves for KaTeX (`\\(...\\)`, `\\[...\\]` in `span.math`) by MathML; count them."
    import html as _html

    from latex2mathml.converter import convert

    def one(m: re.Match) -> str:
        tex = _html.unescape(m.group(2)).strip()
        try:
            ml = convert(tex, display="block" if m.group(1) == "display" else "inline")
        except Exception:  # noqa: BLE001 - TeX latex2mathml cannot read stays as TeX, visibly
            return m.group(0)
        ml = ml.replace("<math ", f'<math alttext="{_html.escape(tex)}" ', 1)
        return f'<span class="math {m.group(1)}">{ml}</span>'

    return _MATH.subn(one, text)


def postprocess(out: Path, own_url: str) -> tuple[int, list[str]]:
    "Load the local plotly.js where a page draws a figure, drop remote resources, make own-site links relative."
    import plotly

    notes, plot_pages = [], 0
    src = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not src.is_file():
        raise DocsError(f"{src} is missing: reinstall plotly (make install)")
    dest = out / PLOTLY_JS
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    for css in sorted(out.joinpath("site_libs").rglob("*.css")):
        text, n = strip_remote_css(css.read_text(encoding="utf-8"))
        if n:
            css.write_text(text, encoding="utf-8")
            notes.append(
                f"{css.relative_to(out)}: removed {n} remote font/stylesheet import(s)"
            )
    for page in sorted(out.rglob("*.html")):
        rel = page.relative_to(out).as_posix()
        offset = posixpath.relpath(".", posixpath.dirname(rel) or ".")
        offset = "" if offset == "." else offset + "/"
        text = page.read_text(encoding="utf-8")
        text, gone = strip_remote(text)
        text, n_math = mathml(text)
        text = _SOURCE_LINK.sub("", text)  # the repository named in settings.ini is a placeholder
        if gone:
            maths = any("katex" in g for g in gone)
            notes.append(
                f"{rel}: removed {len(gone)} remote resource(s)"
                + (f" (KaTeX dropped: {n_math} formula(s) rendered as MathML instead)" if maths else "")
                + ": "
                + ", ".join(sorted(set(gone)))
            )
        if own_url.rstrip("/"):
            text = re.sub(
                r'href="' + re.escape(own_url.rstrip("/")) + r'/?([^"]*)"',
                lambda m, offset=offset: f'href="{offset}{m.group(1)}"',
                text,
            )
        # nbdev 2.4.14 finds no line number for source links
        text = text.replace('#LNone"', '"')
        if "Plotly.newPlot(" in text:
            plot_pages += 1
            tag = f'<script src="{offset}{PLOTLY_JS}" charset="utf-8"></script>'
            text = text.replace("</head>", tag + "\n</head>", 1)
        page.write_text(text, encoding="utf-8")
    return plot_pages, notes


# ----------------------------------------------------------------------------- the build


def _owned(folder: Path, what: str, check) -> None:
    "Refuse a folder the build would empty when it holds something this build did not write."
    if folder.exists():
        if not folder.is_dir():
            raise DocsError(f"{what} {folder} is a file; give a folder")
        if any(folder.iterdir()) and not check(folder):
            raise DocsError(
                f"{what} {folder} is not empty and was not written by this script; give another folder or empty it"
            )


def _prepare(folder: Path, what: str, check) -> None:
    "Empty a folder the build owns (after `_owned` says it may)."
    _owned(folder, what, check)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def _own_proc(f: Path) -> bool:
    "A --proc folder we wrote before, or _proc itself (nbdev's own git-ignored scratch)."
    return (f / MARKER).exists() or f == REPO / "_proc"


def _own_out(f: Path) -> bool:
    "A --out folder that holds a built site."
    return (f / "site_libs").is_dir()


def build(nbs: Path, proc: Path, out: Path, quiet: bool = False) -> dict:
    "Build the site; return the page count, pages with plots, the notes and the time taken."
    t0 = time.perf_counter()
    nbs, proc, out = nbs.resolve(), proc.resolve(), out.resolve()
    if not nbs.is_dir():
        raise DocsError(f"{nbs} is not a folder of notebooks; pass --nbs DIR")
    if (
        proc == out
        or proc in out.parents
        or out in proc.parents
        or nbs in (proc, out)
        or proc in nbs.parents
        or out in nbs.parents
    ):
        raise DocsError(
            "--nbs, --proc and --out must be three separate folders, none inside another"
        )
    _owned(proc, "--proc", _own_proc)  # refuse before any work, so nothing is half-done
    _owned(out, "--out", _own_out)
    notebooks = find_notebooks(nbs)
    if not notebooks:
        raise DocsError(f"{nbs} has no notebooks")
    names: dict[Path, Path] = {}
    for nb in notebooks:
        p = page_name(nb).with_suffix(".ipynb")
        if p in names:
            raise DocsError(
                f"{nb} and {names[p]} would both become {page_name(nb)}; rename one"
            )
        names[p] = nb
    cfg = settings()
    os.chdir(REPO)  # nbdev reads settings.ini and the symbol index from here
    sys.path.insert(0, str(REPO))

    from execnb.nbio import read_nb, write_nb

    _prepare(proc, "--proc", _own_proc)
    (proc / MARKER).write_text(
        "written by tools/build_docs.py; emptied on each build\n"
    )
    # pictures and other files the notebooks link to, as nbdev's proc_nbs copies them
    for f in nbs.rglob("*"):
        r = f.relative_to(nbs)
        if (
            f.is_file()
            and f.suffix != ".ipynb"
            and not any(p.startswith((".", "_")) for p in r.parts)
            and r.name not in ("sidebar.yml", "nbdev.yml", "settings.ini")
        ):
            (proc / r).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, proc / r)
    notes: list[str] = []
    filters = make_filters(cfg.get("lib_name", "dataaug_multi_both"), notes)
    procs = filters.procs()
    from nbdev.process import NBProcessor

    pages = []
    for rel in notebooks:
        nb = read_nb(nbs / rel)
        nb.path_ = str(rel)
        with warnings.catch_warnings():
            # nbdev's "imports and other code" FAQ warning is about the kernel we never start
            warnings.simplefilter("ignore")
            try:
                NBProcessor(nb=nb, procs=procs).process()
            except Exception as e:
                raise DocsError(
                    f"{rel}: nbdev could not process it: {type(e).__name__}: {e}"
                ) from e
        convert_plotly(nb, page_name(rel).stem)
        # nbdev's front matter: the file name already gives the page, drop output-file
        if nb.cells and nb.cells[0].cell_type == "raw":
            nb.cells[0].source = re.sub(
                r"(?m)^output-file:.*\n", "", nb.cells[0].source
            )
        dest = proc / page_name(rel).with_suffix(".ipynb")
        dest.parent.mkdir(parents=True, exist_ok=True)
        nb.pop("path_", None)
        for c in nb.cells:
            for k in [k for k in c if k.endswith("_") or k == "has_sd"]:
                c.pop(k)
        write_nb(_plain(nb), dest)
        pages.append(dest.relative_to(proc))

    import yaml

    own_css = (proc / "styles.css").read_text(encoding="utf-8") if (proc / "styles.css").is_file() else ""
    (proc / "styles.css").write_text(own_css + SITE_CSS, encoding="utf-8")
    css = "styles.css"
    (proc / "_quarto.yml").write_text(
        yaml.safe_dump(quarto_yml(cfg, pages, out, css), sort_keys=False)
    )

    from smalldocs.config import BuildError, ConfigError, load
    from smalldocs.site import Site

    _prepare(out, "--out", _own_out)
    shutil.rmtree(out)  # smalldocs makes it again
    try:
        site = Site(load(proc), quiet=True)
        n = site.build()
    except (BuildError, ConfigError) as e:
        raise DocsError(f"smalldocs: {e}") from e
    notes += [f"smalldocs: {w}" for w in site.warnings]
    plot_pages, more = postprocess(out, site_url(cfg))
    notes += more
    return {
        "pages": n,
        "plot_pages": plot_pages,
        "notes": notes,
        "seconds": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Build the offline docs site from the notebooks (no Quarto, no network)."
    )
    ap.add_argument(
        "--nbs", type=Path, default=REPO / "nbs", help="the notebooks (default nbs/)"
    )
    ap.add_argument(
        "--proc",
        type=Path,
        default=REPO / "_proc",
        help="processed notebooks, emptied first (default _proc/)",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=REPO / "_docs",
        help="the site, emptied first (default _docs/)",
    )
    ap.add_argument(
        "--quiet", "-q", action="store_true", help="print only the summary line"
    )
    a = ap.parse_args(argv)
    try:
        r = build(a.nbs, a.proc, a.out, a.quiet)
    except DocsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not a.quiet:
        for note in r["notes"]:
            print(f"note: {note}", file=sys.stderr)
    where = (
        os.path.relpath(a.out.resolve(), REPO)
        if a.out.resolve().is_relative_to(REPO)
        else str(a.out.resolve())
    )
    print(
        f"built {r['pages']} page(s) ({r['plot_pages']} with plotly figures) into {where}/ in {r['seconds']:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
