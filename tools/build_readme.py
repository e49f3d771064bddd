#!/usr/bin/env python
"""Write README.md from nbs/index.ipynb, without Quarto (which `nbdev_readme` needs).

    python tools/build_readme.py [--nb nbs/index.ipynb] [--out README.md] [--check]

Markdown cells are copied verbatim; code cells become ```python blocks (their `#|` directive lines removed);
saved text outputs become plain ``` blocks and Markdown outputs are copied as they are. Cells marked `#| hide`,
`#| include: false`, `#| export`/`exporti`/`exports` or `#| default_exp` are skipped; `#| echo: false` keeps only the
output and `#| output: false` only the code. `--check` exits 1 when README.md is not what the notebook gives.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEADER = "<!-- Generated from nbs/index.ipynb by tools/build_readme.py (make readme): edit the notebook, not this file. -->\n"
_SKIP = {"hide", "export", "exporti", "exports", "default_exp"}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _text(v) -> str:
    "A notebook string field, stored as a string or a list of lines."
    return "".join(v) if isinstance(v, list) else (v or "")


def directives(src: str) -> tuple[dict[str, str], str]:
    "The leading `#| key[: value]` lines of a code cell as a dict, and the code without them."
    lines, opts = src.split("\n"), {}
    while lines and lines[0].lstrip().startswith("#|"):
        m = re.match(r"([\w-]+)\s*:?\s*(.*)", lines.pop(0).lstrip()[2:].strip())
        if m:
            opts[m.group(1)] = m.group(2).strip()
    return opts, "\n".join(lines)


def fence(body: str, lang: str = "") -> str:
    "A fenced block that its body cannot close."
    longest = max((len(m) for m in re.findall(r"`{3,}", body)), default=0)
    f = "`" * max(3, longest + 1)
    return f"{f}{lang}\n{body.rstrip(chr(10))}\n{f}\n"


def output_md(out: dict) -> str:
    "One saved output as README Markdown: text as a plain block, Markdown as it is, anything else left out."
    kind = out.get("output_type")
    if kind == "stream":
        t = _ANSI.sub("", _text(out.get("text")))
        return fence(t) if t.strip() else ""
    if kind == "error":
        return fence(
            _ANSI.sub(
                "",
                "\n".join(
                    out.get("traceback") or [f"{out.get('ename')}: {out.get('evalue')}"]
                ),
            )
        )
    data = out.get("data") or {}
    if "text/markdown" in data:
        return _text(data["text/markdown"]).strip("\n") + "\n"
    if "text/plain" in data:
        return fence(_ANSI.sub("", _text(data["text/plain"])))
    return ""


def readme(nb: dict) -> str:
    "The README text for a notebook."
    parts = []
    for cell in nb.get("cells", []):
        src = _text(cell.get("source"))
        if cell.get("cell_type") == "markdown":
            if src.strip():
                parts.append(src.strip("\n") + "\n")
        elif cell.get("cell_type") == "code":
            opts, code = directives(src)
            if opts.keys() & _SKIP or opts.get("include") == "false":
                continue
            if code.strip() and opts.get("echo") != "false":
                parts.append(fence(code.strip("\n"), "python"))
            if opts.get("output") != "false":
                parts += [o for o in map(output_md, cell.get("outputs", [])) if o]
    body = "\n".join(parts)
    if body.startswith("# "):  # keep the title first, the notice after it
        title, _, rest = body.partition("\n")
        return f"{title}\n\n{HEADER}{rest}" if rest.strip() else f"{title}\n\n{HEADER}"
    return HEADER + "\n" + body


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Write README.md from nbs/index.ipynb (no Quarto)."
    )
    ap.add_argument(
        "--nb",
        type=Path,
        default=REPO / "nbs" / "index.ipynb",
        help="the notebook (default nbs/index.ipynb)",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=REPO / "README.md",
        help="where to write (default README.md)",
    )
    ap.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the README is out of date",
    )
    a = ap.parse_args(argv)
    if not a.nb.is_file():
        print(
            f"error: {a.nb} does not exist; write the home-page notebook first",
            file=sys.stderr,
        )
        return 2
    try:
        nb = json.loads(a.nb.read_text(encoding="utf-8"))
    except ValueError as e:
        print(
            f"error: {a.nb} is not a notebook ({e}); open and save it in Jupyter",
            file=sys.stderr,
        )
        return 2
    text = readme(nb)
    if a.check:
        same = a.out.is_file() and a.out.read_text(encoding="utf-8") == text
        print(
            f"{a.out.name} is {'up to date' if same else 'out of date: run make readme'}"
        )
        return 0 if same else 1
    tmp = a.out.with_name(a.out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(a.out)
    print(f"wrote {a.out} from {a.nb.name} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
