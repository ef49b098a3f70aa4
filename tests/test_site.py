"""The site builds with one command, and every page, link and image of it is there.

``docs/build_site.py`` is run as a reader runs it, in a fresh process, into a temporary
folder: tutorial 01 executed in a Jupyter kernel (without MNIST: no tutorial executed),
the other tutorials rendered from their source, the Markdown pages. Every page must exist,
every local link and image must resolve (anchors included), and nothing may be loaded from
the network: the site opens from the file system. A small checkout made here shows that a
tutorial that raises fails the build with its name, or with ``--allow-errors`` is rendered
with its error shown and listed, and that TeX becomes MathML.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from helpers import PNG_SIGNATURE, TUTORIALS, needs_mnist

from ff_numpy.data import find_data_dir

for module in ("jupytext", "nbclient", "nbconvert", "markdown_it", "mdit_py_plugins"):
    pytest.importorskip(module, reason="pip install -e .[test]")
pytest.importorskip("latex2mathml", reason="pip install -e .[test]")

ROOT = TUTORIALS.parent
BUILD = ROOT / "docs" / "build_site.py"
DOCUMENTS = ("derivations", "RESULTS", "course", "reliability")
REMOTE = re.compile(r"^(https?:)?//", re.IGNORECASE)


def build(out: Path, *options: str) -> subprocess.CompletedProcess:
    """``python docs/build_site.py --out OUT *options``, one BLAS thread (2 shared cores)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, str(BUILD), "--out", str(out), *options],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


class Page(HTMLParser):
    """The ids, and the ``(tag, attribute, url)`` of every reference, of an HTML page."""

    def __init__(self, path: Path):
        super().__init__()
        self.ids: set[str] = set()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        for key in ("id", "name"):
            if a.get(key):
                self.ids.add(a[key])
        for key in ("href", "src", "srcset", "data", "poster"):
            if a.get(key) is not None:
                self.refs.append((tag, key, a[key]))


def pages(site: Path) -> dict[Path, Page]:
    return {path: Page(path) for path in sorted(site.rglob("*.html"))}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site with tutorial 01 executed (no tutorial without MNIST), built once."""
    out = tmp_path_factory.mktemp("site") / "site"
    options = ["--tutorials", "01"] if find_data_dir() is not None else ["--no-execute"]
    result = build(out, *options)
    assert result.returncode == 0, f"the build failed:\n{result.stdout}\n{result.stderr}"
    assert "site written to" in result.stdout
    return out


def test_every_page_exists(site):
    expected = ["index.html", *(f"docs/{name}.html" for name in DOCUMENTS)]
    expected += [f"tutorials/{p.stem}.html" for p in sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))]
    missing = [page for page in expected if not (site / page).is_file()]
    assert not missing, f"pages not built: {missing}"
    index = Page(site / "index.html")
    linked = {unquote(url) for tag, _, url in index.refs if tag == "a"}
    assert set(expected) - {"index.html"} <= linked, "the index does not link every page"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    sections = re.findall(r"^## (.+)$", readme, flags=re.MULTILINE)
    text = html.unescape((site / "index.html").read_text(encoding="utf-8"))
    assert all(f">{s.strip()}</h2>" in text for s in sections if "`" not in s), "README missing"


def test_every_local_link_and_image_resolves(site):
    found = pages(site)
    broken = []
    for path, page in found.items():
        for tag, key, url in page.refs:
            if REMOTE.match(url) or url.startswith(("data:", "mailto:")):
                continue
            target, _, fragment = url.partition("#")
            dest = (path.parent / unquote(target)).resolve() if target else path
            where = f"{path.relative_to(site)}: <{tag} {key}={url!r}>"
            if not dest.is_file():
                broken.append(f"{where} (no such file)")
            elif fragment and dest.suffix == ".html" and unquote(fragment) not in found[dest].ids:
                broken.append(f"{where} (no such anchor)")
            elif dest.suffix == ".png" and dest.read_bytes()[:8] != PNG_SIGNATURE:
                broken.append(f"{where} (not a PNG file)")
    assert not broken, f"{len(broken)} broken references:\n" + "\n".join(broken[:20])


def test_nothing_is_loaded_from_the_network(site):
    for path, page in pages(site).items():
        assert "script" not in page.tags, f"{path.relative_to(site)} has a script"
        for tag, _, url in page.refs:
            if tag != "a":  # a link to the paper is followed only when clicked
                assert not REMOTE.match(url), f"{path.relative_to(site)} loads {url}"
    for css in site.rglob("*.css"):
        text = css.read_text(encoding="utf-8")
        assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", text), f"{css} loads a URL"


def test_results_page_shows_every_full_run_figure(site):
    source = (ROOT / "docs" / "RESULTS.md").read_text(encoding="utf-8")
    figures = set(re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", source))
    shown = {url for tag, _, url in Page(site / "docs" / "RESULTS.html").refs if tag == "img"}
    assert figures, "docs/RESULTS.md shows no figure"
    assert figures <= shown, f"figures of RESULTS.md not on its page: {figures - shown}"
    for url in figures:
        assert (site / "docs" / url).is_file(), url


def test_derivations_render_tables_and_code(site):
    text = (site / "docs" / "derivations.html").read_text(encoding="utf-8")
    assert text.count("<table>") >= 1 and text.count("<pre") >= 5
    assert "| part |" not in text, "a Markdown table was left as text"


@needs_mnist
def test_executed_tutorial_shows_its_output_and_figures_inline(site):
    page = site / "tutorials" / "01_goodness_and_one_layer.html"
    text = page.read_text(encoding="utf-8")
    assert "Executed in its quick setting" in text
    assert "output_text" in text or "output_stream" in text, "no printed output"
    images = [url for tag, _, url in Page(page).refs if tag == "img"]
    assert images, "no figure inline"
    for url in images:
        assert (page.parent / url).read_bytes()[:8] == PNG_SIGNATURE, url


def test_not_executed_tutorials_say_so(site):
    pages_ = sorted((site / "tutorials").glob("[0-9][0-9]_*.html"))
    later = [p for p in pages_ if not p.name.startswith("01_")]
    assert later
    for p in later:
        assert "not executed for this build" in p.read_text(encoding="utf-8"), p.name


# ----------------------------------------------------------------------- a small checkout
def small_checkout(root: Path) -> None:
    """README, the four documents (math, a table, a figure) and two tutorials, the second
    of which raises."""
    (root / "docs" / "figures").mkdir(parents=True)
    (root / "tutorials").mkdir()
    png = next((ROOT / "docs" / "figures").glob("*.png")).read_bytes()
    (root / "docs" / "figures" / "f.png").write_bytes(png)
    (root / "README.md").write_text(
        "# small\n\n[derivations](docs/derivations.md), [one](tutorials/01_ok.py)\n"
    )
    for name in DOCUMENTS:
        (root / "docs" / f"{name}.md").write_text(
            f"# {name}\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n$$G = \\sum_j y_j^2$$ and "
            "$\\theta$, but `$HOME` is code.\n\n![a figure](figures/f.png)\n"
            "[back](../README.md#small)\n"
        )
    (root / "tutorials" / "01_ok.py").write_text(
        '# %% [markdown]\n# # Tutorial 01: fine\n\n# %%\nprint("one", 1 + 1)\n'
    )
    (root / "tutorials" / "02_broken.py").write_text(
        '# %% [markdown]\n# # Tutorial 02: broken\n\n# %%\nprint("before")\n\n# %%\n1 / 0\n'
    )


def test_a_failing_tutorial_fails_the_build_with_its_name(tmp_path):
    root = tmp_path / "checkout"
    small_checkout(root)
    out = tmp_path / "site"
    failed = build(out, "--root", str(root), "--tutorials", "02")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "tutorial 02_broken failed: ZeroDivisionError" in failed.stderr

    allowed = build(out, "--root", str(root), "--tutorials", "02", "--allow-errors")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "02_broken: ZeroDivisionError" in allowed.stdout.split("raised errors")[-1]
    page = (out / "tutorials" / "02_broken.html").read_text(encoding="utf-8")
    assert "raised an error when the site was built" in page
    assert "before" in page and "ZeroDivisionError" in page
    assert "not executed" in (out / "tutorials" / "01_ok.html").read_text(encoding="utf-8")


def test_small_checkout_tex_becomes_mathml_and_a_foreign_folder_is_kept(tmp_path):
    root = tmp_path / "checkout"
    small_checkout(root)
    out = tmp_path / "site"
    assert build(out, "--root", str(root), "--no-execute").returncode == 0
    page = (out / "docs" / "derivations.html").read_text(encoding="utf-8")
    assert '<math display="block">' in page and '<math display="inline">' in page
    assert "&#x003B8;" in page or "θ" in page  # theta
    assert "<code>$HOME</code>" in page and "<table>" in page
    assert (out / "docs" / "figures" / "f.png").is_file()

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    refused = build(foreign, "--root", str(root), "--no-execute")
    assert refused.returncode == 1 and "not replaced" in refused.stderr
    assert (foreign / "notes.txt").read_text() == "keep me"
