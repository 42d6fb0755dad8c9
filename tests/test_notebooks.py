"""The notebooks run in a real Jupyter kernel, as a reader runs them, and show what they promise.

Every notebook in notebooks/ is executed top to bottom by nbclient in a fresh IPython kernel:
offline (``HF_HUB_OFFLINE=1``), in a temporary working folder, with the stem cache in a folder
of its own, and with matplotlib's default backend in a kernel (inline), so a plot becomes the
PNG a reader sees. A failing cell fails the test naming the notebook, the cell and the error.
Then the outputs are checked for what a reader would look for: the players (MP3 that decodes
to the song's length), the plots (PNGs that are not blank), the files saved (lengths exact to
the sample), the tempo of the aligned loops (measured from the written file, within 1 %), and
no warning or traceback printed anywhere. Stored notebooks carry no outputs.

Each notebook runs once per session (``executed``); the checks read that run.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 600  # a cell that hangs fails instead of holding the suite

nbformat = pytest.importorskip(
    "nbformat", reason="the notebooks run through nbclient: pip install -e '.[test]'")
nbclient = pytest.importorskip(
    "nbclient", reason="the notebooks run through nbclient: pip install -e '.[test]'")


@dataclass
class Run:
    """One executed notebook: the notebook with its outputs, and the folder it ran in."""

    notebook: object
    folder: Path

    def outputs(self, kind: str | None = None):
        """(cell index, output) for every output, or those of one ``output_type``."""
        return [(i, out) for i, cell in enumerate(self.notebook.cells)
                if cell.cell_type == "code" for out in cell.outputs
                if kind is None or out.output_type == kind]

    def data(self, mime: str) -> list[tuple[int, str]]:
        """(cell index, payload) of every rich output holding ``mime``."""
        return [(i, out.data[mime]) for i, out in self.outputs()
                if out.output_type in ("display_data", "execute_result") and mime in out.data]


def kernel_env(folder: Path, numba_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    # this tree's musicstems, whatever is installed; offline as a reader without network
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["HF_HUB_OFFLINE"] = "1"
    env["MUSICSTEMS_CACHE_DIR"] = str(folder / ".stem-cache")  # never the user's cache
    # numba's cache of librosa's kernels: one folder for the kernels of this session, which run
    # one after another (several processes compiling into one folder at once crash), so the
    # second notebook reuses what the first compiled
    env["NUMBA_CACHE_DIR"] = str(numba_dir)
    env.pop("MPLBACKEND", None)  # the kernel's own default (inline): plots become PNGs
    return env


def execute(path: Path, folder: Path, numba_dir: Path) -> Run:
    """Run every cell of ``path`` in a fresh kernel inside ``folder``; fail naming the cell."""
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(folder)}})
    try:
        client.execute(env=kernel_env(folder, numba_dir))
    except nbclient.exceptions.CellExecutionError as exc:
        index = next((i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"
                      and any(o.output_type == "error" for o in cell.outputs)), None)
        source = notebook.cells[index].source if index is not None else "?"
        pytest.fail(f"{path.name} cell {index} raised {exc.ename}: {exc.evalue}\n"
                    f"--- the cell:\n{source}", pytrace=False)
    except nbclient.exceptions.CellTimeoutError as exc:
        pytest.fail(f"{path.name}: a cell ran longer than {CELL_TIMEOUT_S} s: {exc}",
                    pytrace=False)
    return Run(notebook, folder)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """``executed(name)``: that notebook's run, made on first use."""
    runs: dict[str, Run] = {}
    numba_dir = tmp_path_factory.mktemp("numba-kernels")

    def get(name: str) -> Run:
        if name not in runs:
            runs[name] = execute(ROOT / "notebooks" / name,
                                 tmp_path_factory.mktemp(Path(name).stem), numba_dir)
        return runs[name]

    return get


def players(html: str) -> list[tuple[str, bytes]]:
    return [(mime, base64.b64decode(data)) for mime, data in
            re.findall(r"data:(audio/[a-z]+);base64,([A-Za-z0-9+/=]+)", html)]


def decoded_seconds(data: bytes) -> float:
    import soundfile

    audio, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return len(audio) / rate


def check_png(payload: str) -> tuple[int, int]:
    """A plot as the reader sees it: a PNG of a sane size that is not blank."""
    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(payload)))
    image.load()
    width, height = image.size
    assert 300 <= width <= 4000 and 150 <= height <= 4000, image.size
    # a blank (all-white) figure has no variance; axes, lines and labels give plenty
    assert np.asarray(image.convert("L"), dtype=float).std() > 10, "the plot is blank"
    return width, height


def stored_output_problems(notebook) -> list[str]:
    return [f"cell {i}: " + ("outputs" if cell.outputs else f"execution_count "
                                                               f"{cell.execution_count}")
            for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"
            and (cell.outputs or cell.execution_count is not None)]


def wav_frames(path: Path) -> tuple[int, int, int]:
    import soundfile

    info = soundfile.info(str(path))
    return info.frames, info.channels, info.samplerate


# ---------------------------------------------------------------- every notebook


def test_there_are_notebooks():
    assert {"quickstart.ipynb", "alignment.ipynb"} <= {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert stored_output_problems(notebook) == [], (
        f"{path.name} is stored with outputs; clear them (Jupyter: Edit > Clear Outputs of "
        "All Cells; or jupyter nbconvert --clear-output --inplace)")
    assert [c for c in notebook.cells if c.cell_type == "markdown"], "no text that teaches"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_runs_in_a_kernel_without_a_warning(path, executed):
    run = executed(path.name)
    cells = [c for c in run.notebook.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in cells)
    # the control for the check above: an executed notebook is not one stored clean
    assert stored_output_problems(run.notebook)
    printed = "".join(out.text for _, out in run.outputs("stream"))
    # no library's warning (e.g. tqdm's "IProgress not found") and no traceback; musicstems'
    # own warnings are for the reader (the tour's tiny model makes noise that fits no plan)
    others = sorted({w for w in re.findall(r"\w*Warning\b", printed) if w != "MusicStemsWarning"})
    assert others == [], f"{path.name} prints {others}:\n{printed[-3000:]}"
    assert "Traceback" not in printed, printed[-3000:]


# ---------------------------------------------------------------- what each one shows


def test_quickstart_shows_players_and_plots_and_saves_the_song(executed):
    run = executed("quickstart.ipynb")
    html = run.data("text/html")
    _, first = html[0]
    # the song: the mix and its four stems, each an MP3 player of the whole 8 s
    found = players(first)
    assert [mime for mime, _ in found] == ["audio/mpeg"] * 5
    for _, data in found:
        assert decoded_seconds(data) == pytest.approx(8.0, abs=0.1)  # MP3 frames round it
    # song.play("bass") and the regenerated bass: one player each
    assert [len(players(h)) for _, h in html[1:3]] == [1, 1]
    # the remixed song at the end: five players again, the lead marked muted
    last = html[-1][1]
    assert len(players(last)) == 5 and "muted in the mix" in last
    # two plots: the waveform and the spectrogram
    pngs = run.data("image/png")
    assert len(pngs) == 2
    for _, payload in pngs:
        check_png(payload)

    folder = run.folder / "my-song"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert (manifest["sample_rate"], manifest["num_samples"]) == (32000, 8 * 32000)
    for relative in ["mix.wav", *(f"stems/{n}.wav" for n in ("drums", "bass", "pads", "lead"))]:
        frames, channels, rate = wav_frames(folder / relative)
        assert (frames, rate) == (8 * 32000, 32000), relative  # exact to the sample
        assert channels in (1, 2)
    assert (folder / "song.mid").stat().st_size > 100
    assert [e["edit"] for e in manifest["edits"]] == ["regenerate", "remix"]
    assert manifest["stems"]["lead"]["muted"] is True


def test_alignment_puts_the_loops_on_tempo_as_measured_from_its_files(executed):
    import librosa
    import soundfile

    run = executed("alignment.ipynb")
    pngs = run.data("image/png")
    assert len(pngs) == 2  # before and after
    for _, payload in pngs:
        check_png(payload)
    assert len(players(run.data("text/html")[-1][1])) == 1

    length, sr = 12 * 16000, 16000
    for name in ("drums", "bass", "clicks"):
        frames, _, rate = wav_frames(run.folder / "aligned" / f"{name}.wav")
        assert (frames, rate) == (length, sr), name  # exact to the sample

    def click_times(audio):
        """Where each click starts, s: the first sample over a quarter of the peak after a
        gap of 0.1 s (a click lasts a few ms; the phase vocoder smears it over one frame)."""
        loud = np.flatnonzero(np.abs(audio) > 0.25 * np.abs(audio).max())
        return loud[np.diff(loud, prepend=-sr) > 0.1 * sr] / sr

    def bpm_and_phase_s(audio):
        """The clicks' tempo from a line fitted through their times against their beat numbers
        (a click the threshold misses does not shift the others), and the first click's
        distance from the 120 BPM grid."""
        times = click_times(audio)
        beats = np.round((times - times[0]) / np.median(np.diff(times)))
        period_s = np.polyfit(beats, times, 1)[0]
        phase = times[0] % 0.5
        return 60.0 / period_s, min(phase, 0.5 - phase)

    clicks, _ = soundfile.read(run.folder / "aligned" / "clicks.wav", dtype="float32")
    # the control: the clicks as made in the notebook, at 114 BPM (5 % off), 0.2 s off the grid
    made = librosa.clicks(times=np.arange(0.2, length / sr, 60 / 114), sr=sr,
                          click_freq=1500, length=length)
    bpm, phase_s = bpm_and_phase_s(made)
    assert bpm == pytest.approx(114.0, rel=0.001) and phase_s == pytest.approx(0.2, abs=0.001)
    # aligned, as written to the file: within 1 % of 120 BPM, and on the grid to within 30 ms
    # (the phase vocoder's frame smears a click's start by some ms; a 16th is 125 ms)
    bpm, phase_s = bpm_and_phase_s(clicks)
    assert bpm == pytest.approx(120.0, rel=0.01) and phase_s < 0.03, (bpm, phase_s)
    printed = "".join(out.text for _, out in run.outputs("stream"))
    assert "bass semitones with the chords: -2" in printed  # +2 put back


def test_the_tour_shows_five_players(executed):
    run = executed("tour.ipynb")
    # its first song has four stems: four players plus the mix
    assert len(players(run.data("text/html")[0][1])) == 5


def test_a_failing_cell_is_named(tmp_path):
    """The control for the runner: a notebook whose second code cell raises fails, naming the
    cell and the error, and the cells after it do not run."""
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    path = tmp_path / "broken.ipynb"
    nbformat.write(new_notebook(cells=[new_markdown_cell("# broken"), new_code_cell("x = 1"),
                                       new_code_cell("stems['drums']"),
                                       new_code_cell("open('after', 'w')")]), path)
    with pytest.raises(pytest.fail.Exception,
                       match=r"broken.ipynb cell 2 raised NameError: name 'stems'"):
        execute(path, tmp_path, tmp_path / "numba")
    assert not (tmp_path / "after").exists()


# ---------------------------------------------------------------- the docs' pictures


def load_pictures_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_pictures", ROOT / "docs" / "pictures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_blank_picture_fails_the_check():
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (800, 400), "white").save(buffer, format="PNG")
    with pytest.raises(AssertionError, match="blank"):
        check_png(base64.b64encode(buffer.getvalue()).decode())


def test_the_pictures_script_draws_every_picture_from_a_real_run(tmp_path):
    pictures = load_pictures_script()
    written = pictures.main([str(tmp_path)])
    assert [p.name for p in written] == list(pictures.PICTURES)
    for path in written:
        width, height = check_png(base64.b64encode(path.read_bytes()).decode())
        assert width >= 800 and height >= 400, (path.name, width, height)
    # every picture is committed where the docs find it, and some page shows it
    pages = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").rglob("*.md"))
    for name in pictures.PICTURES:
        assert (ROOT / "docs" / "images" / name).is_file(), name
        assert f"images/{name}" in pages, f"no docs page shows {name}"


# ---------------------------------------------------------------- as a reader sees it


def load_check_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_check_notebook",
                                                  ROOT / "docs" / "check_notebook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_browser_check_finds_a_dead_player_a_missing_plot_and_a_blank_page():
    check = load_check_script()
    player = {"how": "loadedmetadata", "ready_state": 4, "duration_s": 8.0, "error": None,
              "source": "data:audio/mpeg;base64,//uY", "box": {"width": 300, "height": 54}}
    plot = {"complete": True, "natural_width": 990, "natural_height": 720,
            "source": "data:image/png;base64,iVBO", "box": {"width": 990, "height": 720}}
    good = {"players": [player] * check.EXPECTED_PLAYERS, "images": [plot] * 2,
            "screenshot": {"width": 1280, "height": 4000, "std": 40.0}}
    assert check.problems(good) == []
    dead = dict(player, how="error", ready_state=0, error=4, duration_s=float("nan"))
    hidden = dict(plot, box={"width": 0, "height": 0})
    bad = {"players": [dead] + [player] * (check.EXPECTED_PLAYERS - 1), "images": [hidden],
           "screenshot": {"width": 1280, "height": 4000, "std": 0.0}}
    found = "\n".join(check.problems(bad))
    for words in ("player 0 did not load", "1 plot images", "plot 0 is not drawn",
                  "looks blank"):
        assert words in found, found


def test_the_quickstart_in_headless_chromium(tmp_path):
    check = load_check_script()
    if check.find_chromium() is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install -y chromium; "
                    ".ci/run installs it), so the rendered quickstart cannot be opened")
    pytest.importorskip("playwright", reason="the browser check drives Chromium through "
                        "playwright: pip install -e '.[test]'")
    pytest.importorskip("nbconvert", reason="the quickstart is rendered to HTML by nbconvert: "
                        "pip install -e '.[test]'")
    report = check.check(tmp_path)
    assert report["problems"] == [], report["problems"]
    # what the browser decoded, not what the HTML claims: every player's MP3 lasts the song
    assert [round(p["duration_s"]) for p in report["players"]] == [8] * 12
    assert all(p["box"]["width"] > 0 for p in report["players"])
    assert (tmp_path / "quickstart.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "report.json").read_text())["problems"] == []
