"""Check the quickstart notebook as a reader sees it: ``python docs/check_notebook.py [--out DIR]``.

1. Execute ``notebooks/quickstart.ipynb`` in a fresh Jupyter kernel (nbclient), offline, in a
   temporary folder.
2. Render it to HTML (nbconvert), as a notebook viewer would show it.
3. Open the page in headless Chromium (Debian's ``chromium`` package, driven by playwright;
   playwright's own browser download is never used) with every request off this machine
   refused, so the check runs offline and proves the page needs nothing from outside.
4. Ask the browser for every ``<audio>`` element to load its source, and read back what it
   decoded (duration, ready state, error) and where it is drawn; read every ``<img>``'s decoded
   size and box; take a screenshot of the whole page.
5. Fail (exit 1) unless the players are there, load, last as long as the song and are drawn
   with a nonzero size, the plots are decoded images drawn with a nonzero size, and the
   screenshot is not blank.

Writes ``quickstart.html``, ``quickstart.png`` (the screenshot) and ``report.json`` into DIR
(default: a new temporary folder, printed). ``tests/test_notebooks.py`` runs it wherever
Chromium is installed; ``.ci/run`` installs it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"
CHROMIUM_NAMES = ("chromium", "chromium-browser")
# what the quickstart shows: the song (mix + 4 stems), play("bass"), the regenerated bass, and
# the remixed song (mix + 4 stems); two plots (waveform, spectrogram)
EXPECTED_PLAYERS = 12
EXPECTED_PLOTS = 2
SONG_S = 8.0  # the quickstart's duration_s
LOAD_TIMEOUT_MS = 20000

# Runs in the page: load every player (they are preload='none', as in Jupyter), wait for its
# metadata or its error, and report it with its box; report every image's decoded size and box.
MEASURE_JS = """
async (timeoutMs) => {
  const box = (el) => { const r = el.getBoundingClientRect();
                        return {width: r.width, height: r.height}; };
  const audios = Array.from(document.querySelectorAll('audio'));
  const players = await Promise.all(audios.map((audio) => new Promise((resolve) => {
    const done = (how) => resolve({
      how, ready_state: audio.readyState, duration_s: audio.duration,
      error: audio.error ? audio.error.code : null,
      source: (audio.currentSrc || audio.src || '').slice(0, 40), box: box(audio)});
    if (audio.readyState >= 1) { done('already loaded'); return; }
    audio.addEventListener('loadedmetadata', () => done('loadedmetadata'), {once: true});
    audio.addEventListener('error', () => done('error'), {once: true});
    setTimeout(() => done('timeout'), timeoutMs);
    audio.preload = 'metadata';
    audio.load();
  })));
  const images = Array.from(document.querySelectorAll('img')).map((img) => ({
    complete: img.complete, natural_width: img.naturalWidth, natural_height: img.naturalHeight,
    source: (img.currentSrc || img.src || '').slice(0, 30), box: box(img)}));
  return {players, images};
}
"""


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def execute_notebook(path: Path, folder: Path):
    """``path`` executed top to bottom in a fresh kernel whose working folder is ``folder``."""
    import nbclient
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["HF_HUB_OFFLINE"] = "1"
    env["MUSICSTEMS_CACHE_DIR"] = str(folder / ".stem-cache")
    # librosa's numba kernels: a cache folder of this run's own (processes that compile into
    # one folder at once crash)
    env.setdefault("NUMBA_CACHE_DIR", str(folder / ".numba"))
    env.pop("MPLBACKEND", None)  # the kernel's inline default: plots become PNGs in the page
    # coalesce_streams: a progress bar's carriage returns overwrite its line, as Jupyter shows
    # it, instead of one line per update
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3", coalesce_streams=True,
                            resources={"metadata": {"path": str(folder)}}).execute(env=env)
    return notebook


def render_html(notebook) -> str:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(notebook)
    return body


def browse(html_path: Path, screenshot: Path, chromium: str) -> dict:
    """Open ``html_path`` in headless ``chromium``; measure players and images; screenshot."""
    from playwright.sync_api import sync_playwright

    refused: list[str] = []

    def offline(route):  # the page's own file and data: URLs only; nothing from the network
        url = route.request.url
        if url.startswith(("file:", "data:", "blob:")):
            route.continue_()
        else:
            refused.append(url)
            route.abort()

    with sync_playwright() as p:
        # --no-sandbox: Chromium's sandbox refuses to start as root, as CI runs
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/*", offline)
            page.goto(html_path.as_uri(), wait_until="load")
            measured = page.evaluate(MEASURE_JS, LOAD_TIMEOUT_MS)
            page.screenshot(path=str(screenshot), full_page=True)
            measured["browser"] = f"Chromium {browser.version}"
        finally:
            browser.close()
    measured["refused_requests"] = sorted(set(refused))
    return measured


def screenshot_spread(path: Path) -> dict:
    """The screenshot's size and grey-level spread (a blank page has none)."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        grey = np.asarray(image.convert("L"), dtype=float)
        return {"width": image.width, "height": image.height, "std": float(grey.std())}


def problems(report: dict) -> list[str]:
    """Everything a reader would miss on the page; empty when it is all there."""
    found = []
    players, images = report["players"], report["images"]
    if len(players) != EXPECTED_PLAYERS:
        found.append(f"{len(players)} players on the page, expected {EXPECTED_PLAYERS}")
    for i, player in enumerate(players):
        duration = player["duration_s"]
        if player["error"] is not None or player["ready_state"] < 1:
            found.append(f"player {i} did not load ({player['how']}, error "
                         f"{player['error']}, ready state {player['ready_state']})")
        elif not (isinstance(duration, (int, float)) and math.isfinite(duration)
                  and abs(duration - SONG_S) < 0.2):
            found.append(f"player {i} lasts {duration} s, not the song's {SONG_S} s")
        if not player["source"].startswith("data:audio/"):
            found.append(f"player {i} has no embedded source ({player['source']!r})")
        if player["box"]["width"] <= 0 or player["box"]["height"] <= 0:
            found.append(f"player {i} is not drawn (box {player['box']})")
    plots = [img for img in images if img["source"].startswith("data:image/png")]
    if len(plots) != EXPECTED_PLOTS:
        found.append(f"{len(plots)} plot images on the page, expected {EXPECTED_PLOTS}")
    for i, img in enumerate(plots):
        if not img["complete"] or img["natural_width"] <= 0:
            found.append(f"plot {i} did not decode ({img})")
        if img["box"]["width"] <= 0 or img["box"]["height"] <= 0:
            found.append(f"plot {i} is not drawn (box {img['box']})")
    shot = report["screenshot"]
    if shot["std"] < 10 or shot["width"] < 800:
        found.append(f"the screenshot looks blank ({shot})")
    return found


def check(out: Path, *, notebook_path: Path = NOTEBOOK, chromium: str | None = None) -> dict:
    """Run the whole check, writing into ``out``; returns the report (``problems`` in it)."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise SystemExit("no Chromium found (looked for " + ", ".join(CHROMIUM_NAMES) +
                         "); install Debian's: apt-get install -y chromium")
    out.mkdir(parents=True, exist_ok=True)
    work = out / "run"
    work.mkdir(exist_ok=True)
    notebook = execute_notebook(notebook_path, work)
    html_path = out / f"{notebook_path.stem}.html"
    html_path.write_text(render_html(notebook), encoding="utf-8")
    screenshot = out / f"{notebook_path.stem}.png"
    report = browse(html_path, screenshot, chromium)
    report["screenshot"] = screenshot_spread(screenshot)
    report["html_bytes"] = html_path.stat().st_size
    report["problems"] = problems(report)
    (out / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for quickstart.html, quickstart.png and report.json "
                             "(default: a new temporary folder)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="check-notebook-"))
    report = check(out)
    print(f"{report['browser']}: {len(report['players'])} players, "
          f"{len(report['images'])} images, screenshot {report['screenshot']['width']}x"
          f"{report['screenshot']['height']} -> {out}")
    for problem in report["problems"]:
        print("problem:", problem, file=sys.stderr)
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
