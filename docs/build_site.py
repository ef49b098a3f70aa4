"""Build the project's site: static HTML that opens from the file system.

One command::

    pip install -e ".[docs]"
    python docs/build_site.py                      # everything, into site/ (git-ignored)

writes ``site/index.html`` (the README) with a page for every tutorial, converted by
jupytext and executed top to bottom in a fresh Jupyter kernel (nbclient), which runs the
tutorial's quick setting with its figures inline; the derivations, the results, the course
plan and the reliability notes; the full runs' figures those pages show; and, for the
library's and tests' files the pages link to, a highlighted copy of each. Open
``site/index.html`` in a browser: no server, no network (no script, font or stylesheet
from elsewhere; every link relative). The full build runs every tutorial (a few minutes on
2 cores); the options make it faster:

    python docs/build_site.py --quick              # only tutorial 01 executed
    python docs/build_site.py --tutorials 01 02    # only these executed
    python docs/build_site.py --no-execute         # no tutorial executed (seconds)
    python docs/build_site.py --out /tmp/site      # another folder

A tutorial that is not executed is still rendered, from its source and without output,
saying so at its top, so every page and link of the site is there whatever the options. A
tutorial that raises an error fails the build, naming it; with ``--allow-errors`` its page
shows the error where it happened and the build lists it at the end. The tutorials need
MNIST, tutorial 10 CIFAR-10 (binary layout): ``--data-dir`` or ``$FF_NUMPY_DATA``, as for
the tutorials themselves.
``docs/check_site_in_browser.py`` then opens every page in headless Chromium.

Why a script beside the documents rather than a module of the library, or
jupyter-book/mkdocs: the site is made of the checkout's files (README, ``docs/*.md``,
``tutorials/``, the sources the derivations link to), which an installed package does not
carry, and its tools stay out of the library's imports (they are imported inside the
functions that use them, from the ``docs`` extra). The site generators load MathJax or
their search scripts from elsewhere or need a server to search; here nbconvert renders the
notebooks, markdown-it (CommonMark, as the documents are written for: GitHub's tables,
lists and heading anchors) renders the Markdown, and the few formulas written in TeX become
MathML, which browsers typeset themselves: pages without a single script.
"""

from __future__ import annotations

import argparse
import html
import os
import posixpath
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the checkout
MARKER = ".ff_numpy_site"  # written into the output folder; only such a folder is replaced
#: the Markdown pages besides the tutorials, in the order of the navigation
DOCUMENTS = {
    "docs/derivations.md": "Derivations",
    "docs/RESULTS.md": "Results",
    "docs/course.md": "Course plan",
    "docs/reliability.md": "Reliability",
}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}
TEXT_SUFFIXES = {".py", ".md", ".txt", ".cfg", ".toml", ".ini", ".json", ".yml", ".yaml", ""}
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class BuildError(Exception):
    """The site cannot be built (a tutorial failed, a file is missing); the message says
    which."""


@dataclass
class Tutorial:
    """One tutorial's page: ``path`` under ``tutorials/``, whether it runs, how it went."""

    path: Path
    execute: bool
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)  # "ename: evalue" of each failing cell


def site_path(rel: str) -> str:
    """Where the file ``rel`` of the checkout (a POSIX path) lands in the site.

    The site mirrors the checkout: ``README.md`` becomes ``index.html``, every other
    Markdown file and every tutorial ``X.html``, images keep their path, and any other
    file linked to becomes a highlighted copy ``FILE.html``.
    """
    if rel == "README.md":
        return "index.html"
    p = posixpath.splitext(rel)
    if p[1] == ".md" or (rel.startswith("tutorials/") and p[1] == ".py"):
        return p[0] + ".html"
    if p[1].lower() in IMAGE_SUFFIXES:
        return rel
    return rel + ".html"


def relative(target: str, page: str) -> str:
    """The relative URL of site file ``target`` from site page ``page``."""
    return posixpath.relpath(target, posixpath.dirname(page) or ".")


# ----------------------------------------------------------------------- the site
class Site:
    """The pages being written into ``out``, and the files they link to."""

    def __init__(self, root: Path, out: Path, tutorials: list[Tutorial]):
        self.root, self.out, self.tutorials = root, out, tutorials
        self.pages: dict[str, str] = {}  # site path -> title, in navigation order
        self.assets: set[str] = set()  # checkout files to copy or show highlighted
        self.missing: list[str] = []  # "page: link" whose target is not in the checkout
        self.md = _markdown()

    # ------------------------------------------------------------------ links
    def link(self, url: str, source: str) -> str:
        """Rewrite ``url``, written in the checkout file ``source``, for the site.

        A link to another file of the checkout points to that file's page (registering
        the file to be copied or shown); anchors, absolute URLs and ``mailto:`` links are
        left alone. A link to a file that is not there is left as written and reported.
        """
        if not url or url.startswith(("#", "/", "mailto:")) or re.match(r"^[a-z][\w+.-]*:", url):
            return url
        path, hash_, fragment = url.partition("#")
        rel = posixpath.normpath(posixpath.join(posixpath.dirname(source), path))
        target = self.root / rel
        if rel.startswith("..") or not target.is_file():
            self.missing.append(f"{source}: {url}")
            return url
        dest = site_path(rel)
        if dest not in self.pages:
            self.assets.add(rel)
        return relative(dest, site_path(source)) + hash_ + fragment

    def markdown(self, text: str, source: str) -> str:
        """Markdown of the checkout file ``source`` (a document or a notebook's cell) as
        HTML, its links rewritten for the site."""
        env: dict = {}
        tokens = self.md.parse(text, env)
        for token in _walk(tokens):
            for attr in ("href", "src"):
                value = token.attrGet(attr)
                if value is not None:
                    token.attrSet(attr, self.link(str(value), source))
        return self.md.renderer.render(tokens, self.md.options, env)

    # ------------------------------------------------------------------ pages
    def write(self, page: str, title: str, body: str) -> None:
        """Write the page ``page`` (a site path) with the navigation around ``body``."""
        nav, group = [], "Home"
        for path, name in self.pages.items():
            kind = "Tutorials" if path.startswith("tutorials/") else "Documents"
            if path != "index.html" and kind != group:
                nav.append(f"<li><h2>{kind}</h2></li>")
                group = kind
            here = ' class="here"' if path == page else ""
            nav.append(f'<li><a{here} href="{relative(path, page)}">{html.escape(name)}</a></li>')
        text = PAGE.format(
            title=html.escape(title),
            css=relative("assets/site.css", page),
            home=relative("index.html", page),
            nav="\n".join(nav),
            body=body,
        )
        dest = self.out / page
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8")

    def document(self, rel: str, title: str) -> None:
        """The page of a Markdown file of the checkout."""
        text = (self.root / rel).read_text(encoding="utf-8")
        self.write(site_path(rel), title, f'<main class="doc">\n{self.markdown(text, rel)}</main>')

    def notebook(
        self, tutorial: Tutorial, title: str, data_dir: str | None, timeout: int, allow: bool
    ) -> None:
        """The page of a tutorial: converted, executed (unless told not to) and rendered."""
        import jupytext
        from nbconvert import HTMLExporter
        from nbconvert.preprocessors import ExtractOutputPreprocessor

        rel = tutorial.path.relative_to(self.root).as_posix()
        nb = jupytext.read(tutorial.path)
        if tutorial.execute:
            _execute(nb, tutorial, data_dir, timeout, allow)
        page = site_path(rel)
        stem = posixpath.basename(page)[: -len(".html")]
        exporter = HTMLExporter(
            template_name="basic",
            exclude_input_prompt=True,
            exclude_output_prompt=True,
            filters={"markdown2html": lambda text: self.markdown(text, rel)},
        )
        exporter.register_preprocessor(ExtractOutputPreprocessor(), enabled=True)
        files = f"{stem}_files"
        body, resources = exporter.from_notebook_node(
            nb, resources={"unique_key": stem, "output_files_dir": files}
        )
        folder = self.out / posixpath.dirname(page)
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in resources.get("outputs", {}).items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        if tutorial.errors:
            items = "".join(f"<li><code>{html.escape(e)}</code></li>" for e in tutorial.errors)
            note = (
                '<p class="note error">This notebook raised an error when the site was built '
                f"(shown below, where it happened):</p><ul>{items}</ul>"
            )
        elif tutorial.execute:
            note = (
                '<p class="note">Executed in its quick setting in a Jupyter kernel when the '
                f"site was built ({tutorial.seconds:.0f} s).</p>"
            )
        else:
            note = (
                '<p class="note">Shown as written, not executed for this build of the site: '
                "run it in Jupyter to see its output.</p>"
            )
        download = f'<p class="source">Source: <a href="{stem}.py">{stem}.py</a></p>'
        shutil.copyfile(tutorial.path, folder / f"{stem}.py")
        self.write(page, title, f'<main class="notebook">\n{note}\n{download}\n{body}</main>')

    def copy_assets(self) -> None:
        """Copy every image the pages show; write a highlighted page for every other file
        they link to."""
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import TextLexer, get_lexer_for_filename
        from pygments.util import ClassNotFound

        for rel in sorted(self.assets):
            src, dest = self.root / rel, self.out / site_path(rel)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if posixpath.splitext(rel)[1].lower() in IMAGE_SUFFIXES:
                shutil.copyfile(src, dest)
                continue
            try:
                code = src.read_text(encoding="utf-8")
            except UnicodeDecodeError:  # a binary file: copied as it is, under its own name
                shutil.copyfile(src, self.out / rel)
                continue
            try:
                lexer = get_lexer_for_filename(src.name, code)
            except ClassNotFound:
                lexer = TextLexer()
            formatter = HtmlFormatter(cssclass="highlight", linenos="inline", lineanchors="L")
            body = f'<main class="doc"><h1><code>{html.escape(rel)}</code></h1>\n'
            body += highlight(code, lexer, formatter) + "</main>"
            self.write(site_path(rel), rel, body)

    def stylesheet(self) -> None:
        from pygments.formatters import HtmlFormatter

        css = CSS + HtmlFormatter(style="default").get_style_defs(".highlight")
        (self.out / "assets").mkdir(parents=True, exist_ok=True)
        (self.out / "assets" / "site.css").write_text(css, encoding="utf-8")


def _walk(tokens):
    for token in tokens:
        yield token
        if token.children:
            yield from _walk(token.children)


def _markdown():
    """A CommonMark parser with GitHub's tables, strikethrough and heading anchors, code
    highlighted by Pygments and TeX (``$...$``, ``$$...$$``) as MathML."""
    from markdown_it import MarkdownIt
    from mdit_py_plugins.anchors import anchors_plugin
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    md = MarkdownIt("commonmark", {"highlight": _highlight}).enable(["table", "strikethrough"])
    md.use(anchors_plugin, min_level=1, max_level=6)
    md.use(
        dollarmath_plugin,
        allow_space=False,  # "$C --lr" in prose is not math
        allow_digits=False,  # nor "$2 and $3"
        double_inline=True,
        renderer=_mathml,
    )
    return md


def _highlight(code: str, lang: str, attrs) -> str:
    """A fenced block in a language Pygments knows, highlighted; "" (plain) otherwise."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    if not lang:
        return ""
    try:
        lexer = get_lexer_by_name(lang)
    except ClassNotFound:
        return ""
    spans = highlight(code, lexer, HtmlFormatter(nowrap=True))
    return f'<pre class="highlight"><code>{spans}</code></pre>'


def _mathml(tex: str, options: dict) -> str:
    """TeX as MathML (typeset by the browser); the TeX itself where it cannot be
    converted."""
    from latex2mathml.converter import convert

    display = "block" if options.get("display_mode") else "inline"
    try:
        mathml = convert(tex.strip(), display=display)
    except Exception:  # an unsupported command: show the TeX, readable as it is
        return f"<code>{html.escape(tex)}</code>"
    return mathml.replace(' xmlns="http://www.w3.org/1998/Math/MathML"', "", 1)


def _execute(nb, tutorial: Tutorial, data_dir: str | None, timeout: int, allow: bool) -> None:
    """Run the notebook ``nb`` top to bottom in a fresh kernel, in an empty folder (where
    the tutorial writes its figures), recording the time and any errors in ``tutorial``."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    name = tutorial.path.stem
    if data_dir is not None:
        os.environ["FF_NUMPY_DATA"] = str(Path(data_dir).resolve())  # the kernel inherits it
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"site_{name}_") as cwd:
        client = NotebookClient(
            nb,
            kernel_name="python3",
            timeout=timeout,  # per cell
            allow_errors=allow,
            resources={"metadata": {"path": cwd}},
        )
        try:
            client.execute()
        except CellExecutionError as e:  # only without --allow-errors
            detail = ANSI.sub("", str(e)).strip().splitlines()
            raise BuildError(
                f"tutorial {name} failed: {e.ename}: {e.evalue}\n  " + "\n  ".join(detail[-25:])
            ) from None
        except Exception as e:  # a dead kernel, a cell over the time limit
            if not allow:
                raise BuildError(f"tutorial {name} failed: {type(e).__name__}: {e}") from None
            tutorial.errors.append(f"{type(e).__name__}: {e} (the cells after it did not run)")
    tutorial.seconds = time.perf_counter() - t0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                tutorial.errors.append(f"{out.get('ename')}: {ANSI.sub('', out.get('evalue', ''))}")


def _title(path: Path) -> str:
    """A tutorial's title, "Tutorial NN: what it teaches", from its first lines; its file
    name where they have none."""
    for line in path.read_text(encoding="utf-8").splitlines()[:10]:
        m = re.search(r"Tutorial\s+\d+\s*:\s*(.+?)[.\s]*$", line)
        if m:
            return f"Tutorial {path.stem[:2]}: {re.sub(r'[`*]', '', m.group(1))}"
    return path.stem


# ----------------------------------------------------------------------- the build
def build(
    out: Path,
    root: Path = ROOT,
    execute: list[str] | None = None,
    allow_errors: bool = False,
    data_dir: str | None = None,
    timeout: int = 900,
    log=print,
) -> list[Tutorial]:
    """Build the site of the checkout ``root`` into ``out``.

    Parameters
    ----------
    out : Path
        Output folder: created, or replaced if it holds a site built before (and nothing
        else is replaced).
    root : Path
        The checkout: ``README.md``, ``docs/*.md`` of :data:`DOCUMENTS`,
        ``tutorials/NN_*.py``.
    execute : list of str, optional
        Tutorials to execute, by number (``"01"``) or name; all when None, none when empty.
    allow_errors : bool
        Render a tutorial that raises with its error shown, instead of failing the build.
    data_dir : str, optional
        MNIST folder for the tutorials (``$FF_NUMPY_DATA`` in their kernels).
    timeout : int
        Seconds a cell may run.
    log : callable
        Prints progress.

    Returns
    -------
    list of Tutorial
        Each tutorial's page: executed or not, seconds, errors.

    Raises
    ------
    BuildError
        A tutorial raised an error (without ``allow_errors``), or a page's file is missing.
    """
    paths = sorted((root / "tutorials").glob("[0-9][0-9]_*.py"))
    for rel in ("README.md", *DOCUMENTS):
        if not (root / rel).is_file():
            raise BuildError(f"{root / rel} is missing")
    if execute is not None:
        unknown = [t for t in execute if not any(_selects(t, p) for p in paths)]
        if unknown:
            names = ", ".join(p.stem for p in paths)
            raise BuildError(f"no tutorial {', '.join(unknown)}; the tutorials are {names}")
    tutorials = [
        Tutorial(p, execute is None or any(_selects(t, p) for t in execute)) for p in paths
    ]
    _prepare(out)
    site = Site(root, out, tutorials)
    site.pages["index.html"] = "Home"
    titles = {t.path: _title(t.path) for t in tutorials}
    for t in tutorials:  # in the navigation: "01 what it teaches"
        label = re.sub(r"^Tutorial (\d+): ", r"\1 ", titles[t.path])
        label = re.sub(r"\s*\([^)]*\)$", "", label)  # without "(paper Sec. 7)"
        site.pages[site_path(f"tutorials/{t.path.name}")] = label
    for rel, title in DOCUMENTS.items():
        site.pages[site_path(rel)] = title
    site.stylesheet()

    for t in tutorials:
        if t.execute:
            log(f"{t.path.stem}: executing in a kernel", flush=True)
        site.notebook(t, titles[t.path], data_dir, timeout, allow_errors)
        errors = f", {len(t.errors)} error(s)" if t.errors else ""
        done = f"executed in {t.seconds:.1f} s{errors}" if t.execute else "not executed"
        log(f"{t.path.stem}: rendered, {done}", flush=True)
    site.document("README.md", "ff_numpy")
    for rel, title in DOCUMENTS.items():
        site.document(rel, title)
    site.copy_assets()
    for m in site.missing:
        log(f"warning: link to a file not in the checkout: {m}")
    return tutorials


def _selects(token: str, path: Path) -> bool:
    return path.stem == token or path.stem.split("_", 1)[0] == token.zfill(2)


def _prepare(out: Path) -> None:
    """An empty ``out``: a new folder, or the site built there before, removed."""
    if out.exists():
        if not (out / MARKER).is_file() and any(out.iterdir()):
            raise BuildError(f"{out} is not empty and holds no site built before: not replaced")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("written by docs/build_site.py\n", encoding="utf-8")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description="Build the site: every tutorial executed (quick setting) and rendered, "
        "the derivations, results, course and reliability pages; static HTML in OUT."
    )
    p.add_argument("--out", type=Path, default=ROOT / "site", help="output folder (site/)")
    p.add_argument(
        "--tutorials",
        nargs="+",
        metavar="NN",
        help="execute only these tutorials (numbers or names); the others are rendered "
        "without output",
    )
    p.add_argument("--quick", action="store_true", help="execute only tutorial 01")
    p.add_argument("--no-execute", action="store_true", help="execute no tutorial")
    p.add_argument(
        "--allow-errors",
        action="store_true",
        help="a tutorial that raises is rendered with its error shown (listed at the end) "
        "instead of failing the build",
    )
    p.add_argument("--data-dir", help="MNIST folder for the tutorials (default $FF_NUMPY_DATA)")
    p.add_argument("--timeout", type=int, default=900, help="seconds a cell may run (900)")
    p.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)  # for the tests
    args = p.parse_args(argv)
    execute = None
    if args.no_execute:
        execute = []
    elif args.tutorials:
        execute = args.tutorials
    elif args.quick:
        execute = ["01"]
    t0 = time.perf_counter()
    try:
        tutorials = build(
            args.out.resolve(), args.root.resolve(), execute, args.allow_errors, args.data_dir,
            args.timeout,
        )  # fmt: skip
    except BuildError as e:
        print(f"build_site: {e}", file=sys.stderr)
        return 1
    except ImportError as e:
        print(f"build_site: {e}: pip install -e '.[docs]'", file=sys.stderr)
        return 1
    failed = [t for t in tutorials if t.errors]
    print(f"site written to {args.out}/index.html in {time.perf_counter() - t0:.0f} s")
    if failed:
        print(f"{len(failed)} tutorial(s) raised errors, rendered with them shown:")
        for t in failed:
            print(f"  {t.path.stem}: " + "; ".join(t.errors))
    return 0


# ----------------------------------------------------------------------- page and style
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - ff_numpy</title>
<link rel="stylesheet" href="{css}">
</head>
<body>
<nav>
<p class="brand"><a href="{home}">ff_numpy</a></p>
<ul>
{nav}
</ul>
</nav>
{body}
</body>
</html>
"""

CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg-code: #f6f8fa;
        --accent: #0b5cad; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); font: 16px/1.55 system-ui, -apple-system, "Segoe UI",
       "DejaVu Sans", "Liberation Sans", sans-serif; display: flex; }
nav { flex: 0 0 15rem; height: 100vh; position: sticky; top: 0; overflow-y: auto;
      padding: 1rem; border-right: 1px solid var(--line); background: #fbfcfd;
      font-size: 0.9rem; }
nav .brand { font-weight: 700; font-size: 1.15rem; margin: 0 0 0.8rem; }
nav ul { list-style: none; margin: 0; padding: 0; }
nav li { margin: 0.15rem 0; }
nav h2 { font-size: 0.75rem; text-transform: uppercase; letter-spacing: 0.05em;
         color: var(--muted); margin: 1rem 0 0.3rem; border: 0; }
nav a { color: var(--fg); text-decoration: none; display: block; padding: 0.1rem 0.3rem;
        border-radius: 4px; }
nav a:hover { background: #eef2f6; }
nav a.here { background: #dbe9f7; font-weight: 600; }
main { flex: 1; min-width: 0; max-width: 58rem; padding: 1.5rem 2.5rem 4rem; }
a { color: var(--accent); }
h1, h2, h3, h4 { line-height: 1.25; margin: 1.6em 0 0.6em; }
main > h1:first-child, main > .note:first-child { margin-top: 0.4rem; }
h1 { font-size: 1.9rem; border-bottom: 1px solid var(--line); padding-bottom: 0.3em; }
h2 { font-size: 1.45rem; border-bottom: 1px solid var(--line); padding-bottom: 0.2em; }
h3 { font-size: 1.2rem; }
code, pre { font-family: "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace;
            font-size: 0.86em; }
:not(pre) > code { background: var(--bg-code); padding: 0.1em 0.35em; border-radius: 4px; }
pre { background: var(--bg-code); padding: 0.8em 1em; overflow-x: auto; border-radius: 6px;
      line-height: 1.45; }
pre code { font-size: 1em; }
table { border-collapse: collapse; margin: 1em 0; display: block; overflow-x: auto;
        font-size: 0.92em; }
th, td { border: 1px solid var(--line); padding: 0.35em 0.7em; vertical-align: top; }
th { background: var(--bg-code); }
tr:nth-child(even) td { background: #fafbfc; }
img { max-width: 100%; height: auto; }
blockquote { margin: 1em 0; padding: 0 1em; color: var(--muted);
             border-left: 0.25em solid var(--line); }
math { font-size: 1.1em; }
math[display="block"] { margin: 0.8em 0; }
.note { background: #eef6ff; border-left: 4px solid #7aa7d6; padding: 0.5em 0.8em;
        font-size: 0.92em; }
.note.error { background: #fff0f0; border-left-color: #d33; }
.source { font-size: 0.9em; color: var(--muted); }
.header-anchor { visibility: hidden; }
/* notebooks (nbconvert's basic template) */
.cell { margin: 0.9em 0; }
.input_area .highlight { margin: 0; }
.input_area pre { border-left: 3px solid #9bbbd9; margin: 0; }
.output_wrapper, .output { margin: 0; }
.output_area pre { background: none; padding: 0.4em 1em; margin: 0; border-left: 3px solid
                   #e1e4e8; border-radius: 0; }
.output_stderr pre { background: #fff5f5; }
.output_error pre { background: #fff0f0; border-left-color: #d33; }
.output_png img { display: block; margin: 0.4em 0 0.4em 1em; max-width: calc(100% - 1em); }
.text_cell_render { margin: 1em 0; }
.ansi-red-fg { color: #c01c28; } .ansi-green-fg { color: #26a269; }
.ansi-yellow-fg { color: #a2734c; } .ansi-blue-fg { color: #12488b; }
.ansi-magenta-fg { color: #a347ba; } .ansi-cyan-fg { color: #2aa1b3; }
.ansi-bold { font-weight: 700; }
"""

if __name__ == "__main__":
    sys.exit(main())
