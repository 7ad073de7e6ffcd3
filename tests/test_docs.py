"""The documentation site: `make docs`'s builder run for real on the notebooks, the pages opened in headless Chromium."""
import base64, io, json, re, subprocess, sys, time
from html import unescape
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crisscross.docs import build_docs, demo_project, page_name, site_notebooks, notebook_json
from conftest import REPO, chromium

def browse(page: Path, profile: Path, *args) -> subprocess.CompletedProcess:
    "Open `page` in headless Chromium with `args` (`--dump-dom`, `--screenshot=...`)."
    cmd = [chromium("The docs test opens the pages in"), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           f"--user-data-dir={profile}", *args, page.as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}"
    return res


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    "The docs of this project, built once by the same command as `make docs` (into a temporary folder)."
    out = tmp_path_factory.mktemp("docs") / "site"
    t0 = time.time()
    res = subprocess.run([sys.executable, "-m", "crisscross.docs", "--out", out], cwd=REPO, capture_output=True,
                         text=True, timeout=1500, stdin=subprocess.DEVNULL)
    print(f"docs build: {time.time() - t0:.0f} s\n{res.stdout[-3000:]}")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def dom(site, tmp_path_factory):
    "The DOM of a page as headless Chromium renders it."
    profile = tmp_path_factory.mktemp("chromium-profile")
    return lambda page: browse(site / page, profile, "--dump-dom").stdout


def test_every_notebook_has_a_page_and_none_failed(site):
    report = json.loads((site / "build-report.json").read_text())
    pages = {p["source"]: p for p in report["pages"]}
    notebooks = [p.relative_to(REPO / "nbs").as_posix() for p in site_notebooks(REPO / "nbs")]
    assert sorted(pages) == sorted(notebooks)
    failed = [f"{p['source']}: {p['status']}: {p['note']}" for p in report["pages"] if p["failed"]]
    assert not failed, "pages that did not build as they should:\n" + "\n".join(failed)
    assert report["executed"] and all(p["status"] == "ok" for p in report["pages"])
    for name, p in pages.items(): assert (site / page_name(name)).is_file() and p["page"] == page_name(name)
    # every module page carries API entries (show_doc's heading and source link)
    for p in report["pages"]:
        if p["kind"] == "module":
            text = (site / p["page"]).read_text()
            assert text.count(">source</a>") >= 1 and "<h3" in text, f"{p['page']} has no API entries"


def test_index_page(site, dom):
    html = dom("index.html")
    assert "<title>crisscross</title>" in html and '<h1 id="crisscross">' in html
    assert "re-implements the method of" in html  # the prose
    assert "Self-supervised audio-visual representation learning" in html  # the summary line
    # the sidebar links every page, and every link lands on a page of the site
    nav = re.search(r'<nav class="site-nav">(.*?)</nav>', html, re.S)[1]
    links = re.findall(r'href="([^"#]+)"', nav)
    assert {"encoders.html", "samplers.html", "pretrain.html"} <= set(links)
    assert all((site / l).is_file() for l in links), [l for l in links if not (site / l).is_file()]
    assert "ViewWindows(v1=(" in html and "'intra':" in html  # the examples, executed, with their outputs
    assert "<pre>['" not in html, "an output shown as a list of lines"


def test_api_page_renders_with_its_content(site, dom, tmp_path):
    html = dom("encoders.html")
    assert "<title>Encoders</title>" in html and '<h1 id="encoders">' in html
    assert "CrissCross learns one encoder per modality" in html  # prose
    # show_doc's entry for r2plus1d_18: heading (with nbdev's anchor), signature, docstring, source link
    assert '<h3 id="r2plus1d_18">' in html
    entry = html[html.index('<h3 id="r2plus1d_18">'):]
    signature = unescape(re.sub(r"<[^>]+>", "", entry[:entry.index("</pre>")]))
    assert "def r2plus1d_18(" in signature and "width:int=64, depth:int=2, pool:str='avg'" in signature, signature
    assert ")->Backbone:" in signature, signature
    assert "R(2+1)D-18 video backbone (AVID variant)" in html
    assert re.search(r'<a href="https://github.com/[^"]+/crisscross/encoders.py#L\d+"[^>]*>source</a>', html)
    assert "15379136" in html  # an executed example's output
    # no notebook machinery on the page: directives, hidden cells, Pandoc leftovers
    for leftover in ("#| export", "#| hide", "nbdev_export", "{target=", "show_doc("):
        assert leftover not in html, leftover
    shot = tmp_path / "encoders.png"
    browse(site / "encoders.html", tmp_path / "profile", "--window-size=1280,2000", f"--screenshot={shot}")
    check_picture(shot, (1280, 2000))
    print(f"screenshot of the encoders page: {shot}")


def test_figures_are_on_the_pages(site, dom):
    html = dom("samplers.html")
    images = re.findall(r'<img[^>]+src="data:image/png;base64,([^"]+)"', html)
    assert images, "the samplers page shows no figure"
    fig = Image.open(io.BytesIO(base64.b64decode(images[0])))
    assert fig.width > 300 and fig.height > 50
    assert np.asarray(fig.convert("L")).std() > 10, "the figure is blank"
    run = dom("pretrain.html")  # a run notebook: its note and its pictures
    assert "This notebook is run, not imported" in run and "papermill" in run
    assert len(re.findall(r'<img[^>]+src="data:image/png', run)) >= 2


def check_picture(path: Path, size):
    "A real screenshot: the size asked for, not one colour, some text on it."
    img = Image.open(path)
    assert img.size == size, img.size
    px = np.asarray(img.convert("L"), dtype=float)
    assert px.std() > 20, f"{path} is nearly uniform (std {px.std():.1f})"
    dark = (px < 128).mean()
    assert 0.005 < dark < 0.5, f"{path}: {dark:.3f} of the pixels are dark: no text, or no page"
    assert len(np.unique(np.asarray(img.convert("RGB")).reshape(-1, 3), axis=0)) > 50


def test_a_notebook_out_of_time_is_killed_and_shown_unexecuted(tmp_path):
    "A hanging notebook (and what it started) is killed at the time limit; its page says so; the others build."
    nbs = demo_project(tmp_path / "demo")
    pid_file = tmp_path / "child.pid"
    (nbs / "hangs.ipynb").write_text(notebook_json(
        ("markdown", "# Hangs\n> Never finishes"),
        ("code", f"import subprocess, time\nchild = subprocess.Popen(['sleep', '600'])\n"
                 f"open({str(pid_file)!r}, 'w').write(str(child.pid))\ntime.sleep(600)")))
    t0 = time.time()
    reports = build_docs(tmp_path / "site", nbs, timeout=25, log=lambda *a: None)
    assert time.time() - t0 < 120
    assert [(r.page, r.status) for r in reports] == [("index.html", "ok"), ("hangs.html", "timeout")]
    assert reports[1].failed and "timed out after 25 s" in reports[1].note
    page = (tmp_path / "site" / "hangs.html").read_text()
    assert "did not finish in time" in page and "<h1" in page and "Never finishes" in page
    child = int(pid_file.read_text())
    for _ in range(50):  # killed with its process group; gone, or a zombie waiting for its new parent
        status = Path(f"/proc/{child}/status")
        if not status.exists() or "State:\tZ" in status.read_text(): break
        time.sleep(0.1)
    else: pytest.fail(f"the notebook's child process {child} survived the timeout")
    # nothing was left in the demo project's nbs/ or _proc/
    assert sorted(p.name for p in nbs.iterdir()) == ["hangs.ipynb", "index.ipynb"]
    assert list((nbs.parent / "_proc").iterdir()) == []


def test_formulas_render_as_mathematics(site, dom):
    "The losses page's TeX arrives as MathML, which Chromium draws itself: no script, no network, no raw `$$`."
    html = dom("losses.html")
    assert html.count("<math") >= 2 and "<mfrac>" in html, "the loss formulas are MathML"
    assert "$$" not in html and "\\operatorname" not in html and "mathjax" not in html.lower()
