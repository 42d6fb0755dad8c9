"""Draw the documentation's pictures from real runs: ``python docs/pictures.py [OUT_DIR]``.

Everything is made offline with the sketch backend, so the pictures show what the code does
today, not what someone once drew:

* ``pipeline.png``: the pipeline's stages in the order a real ``compose(..., save=...)`` reported
  them to its callback (checked against :data:`musicstems.progress.STAGES`), each box with what
  that run's manifest says the stage did.
* ``demo-song.png``: ``musicstems demo``'s song (its stems and settings), drawn by
  ``song.plot()``: every stem, the beat grid and chords, the mix's short-term loudness.
* ``alignment.png``: loops off tempo, late and transposed, before and after ``align_stems``
  (the material of ``notebooks/alignment.ipynb``), as onset strength on the 120 BPM grid.

OUT_DIR defaults to ``docs/images`` beside this script. The script lives in docs/ so the pages
and the pictures they show change together; ``tests/test_notebooks.py`` runs it into a temporary
folder and checks that every picture is a real, non-blank image.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PICTURES = ("pipeline.png", "demo-song.png", "alignment.png")
DPI = 100
# PNG metadata without the matplotlib version, so a re-run on another release changes no byte
# that is not a pixel
PNG_METADATA = {"Software": None}


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, metadata=PNG_METADATA)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


# ---------------------------------------------------------------- the pipeline


def pipeline_run(folder: Path):
    """A short sketch song saved to ``folder``, with the stages its callback reported."""
    from musicstems import compose

    events: list[dict] = []
    song = compose({"drums": "punchy techno drums", "bass": "deep acid bassline",
                    "pads": "warm pads"}, style="techno", bpm=124, key="A minor",
                   duration_s=4, seed=3, backend="sketch", progress=False,
                   callback=events.append, save=folder / "song")
    stages = list(dict.fromkeys(event["stage"] for event in events))
    return song, stages


def stage_notes(song, saved: Path) -> dict[str, str]:
    """What each stage did in this run, read from its manifest (every figure here is the
    run's own)."""
    m = song.manifest
    stems = m["stems"]
    plan = song.plan
    moved = [n for n, e in stems.items() if (e.get("alignment") or {}).get("engine")]
    fits = sum(bool(e.get("fits")) for e in song.fit.values())
    measured = [e["loudness"]["measured_lufs"] for e in stems.values()]
    master = m["mix"]["master"]
    return {
        "plan": f"{plan.bpm:g} BPM, {plan.key.name}\n{len(plan.chords)} bars of chords",
        "generate": f"{len(stems)} stems ({m['settings']['backend']}),\n"
                    f"{m['num_samples']} samples at {m['sample_rate']} Hz",
        "align": "tempo, grid, key\n" + (f"moved: {', '.join(moved)}" if moved
                                          else "all on the grid already"),
        "fit": f"{fits} of {len(song.fit)} stems\nfit the plan",
        "loudness": f"{min(measured):.1f} to {max(measured):.1f} LUFS\n"
                    f"-> {m['settings']['stem_lufs']:g} LUFS each",
        "mix": f"pan, sum (pydub), master\n{master['input_lufs']:.1f} -> "
               f"{master['output_lufs']:.1f} LUFS",
        "analyze": "LUFS, peaks, spectrum\nof every stem and the mix",
        "save": f"{sum(p.is_file() for p in saved.rglob('*'))} files: mix, stems,\n"
                "manifest.json (atomic)",
    }


def draw_pipeline(song, stages: list[str], saved: Path):
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    from musicstems.progress import STAGES

    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise RuntimeError(f"the run reported stages {unknown} that progress.STAGES lacks")
    notes = stage_notes(song, saved)
    columns = 4
    rows = -(-len(stages) // columns)
    width, height, gap_x, gap_y = 2.6, 1.2, 0.7, 0.9
    fig, ax = plt.subplots(figsize=(columns * (width + gap_x) + 0.2, rows * (height + gap_y) + 1.2))
    ax.set_axis_off()
    centres = []
    for i, stage in enumerate(stages):
        row, col = divmod(i, columns)
        if row % 2:  # a snake: the second row runs right to left, so the arrows stay short
            col = columns - 1 - col
        x = col * (width + gap_x)
        y = -row * (height + gap_y)
        ax.add_patch(FancyBboxPatch((x, y), width, height, boxstyle="round,pad=0.05",
                                    facecolor="#e8f0fb", edgecolor="#3465a4", linewidth=1.5))
        ax.text(x + width / 2, y + height - 0.22, f"{i + 1}  {stage}", ha="center", va="top",
                fontsize=12, fontweight="bold")
        ax.text(x + width / 2, y + 0.45, notes.get(stage, ""), ha="center", va="center",
                fontsize=8.5, color="0.2")
        centres.append((x, y))
    for (x0, y0), (x1, y1) in zip(centres, centres[1:]):
        if y0 == y1:  # same row: side to side
            start = (x0 + width, y0 + height / 2) if x1 > x0 else (x0, y0 + height / 2)
            end = (x1, y1 + height / 2) if x1 > x0 else (x1 + width, y1 + height / 2)
        else:  # down to the next row
            start, end = (x0 + width / 2, y0), (x1 + width / 2, y1 + height)
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=16,
                                     color="#3465a4", linewidth=1.5))
    ax.set_xlim(-0.2, columns * (width + gap_x) - gap_x + 0.2)
    ax.set_ylim(-(rows - 1) * (height + gap_y) - 0.3, height + 0.6)
    ax.set_title("compose(): spec -> plan -> generate -> align -> fit -> loudness -> mix -> "
                 "analyze -> save\n(each stage returns audio and a report; the reports go to "
                 "the manifest)", fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- the demo song


def demo_song():
    """``musicstems demo``'s song, rendered by the sketch backend."""
    from musicstems import compose
    from musicstems.cli import DEMO_SETTINGS, DEMO_STEMS

    return compose(DEMO_STEMS, **DEMO_SETTINGS, backend="sketch", progress=False, cache=False)


# ---------------------------------------------------------------- alignment


def misaligned_loops(sr: int = 16000, bpm: float = 120.0) -> dict[str, np.ndarray]:
    """Drums on time, the sketch bass 5 % slow, 0.3 beat late and 2 semitones high, and
    clicks at 114 BPM from 0.2 s (``notebooks/alignment.ipynb``'s loops)."""
    import librosa

    from musicstems.testing import sketch_part

    drums = sketch_part("drums", role_name="drums", bpm=bpm, sr=sr)
    bass = sketch_part("synth bass", bpm=bpm, factor=0.95, delay_beats=0.3, semitones=2, sr=sr)
    length = drums.shape[-1]
    clicks = librosa.clicks(times=np.arange(0.2, length / sr, 60 / 114), sr=sr,
                            click_freq=1500, length=length)
    return {"drums": drums, "bass": bass,
            "clicks": (0.5 * clicks).astype(np.float32)[np.newaxis]}


def draw_alignment(before: dict, after, sr: int, bpm: float = 120.0, shown_s: float = 6.0):
    import librosa
    import matplotlib.pyplot as plt

    names = list(before)
    fig, axes = plt.subplots(len(names), 2, sharex=True, figsize=(11, 1.3 * len(names) + 1.0),
                             squeeze=False)
    for col, (title, stems) in enumerate((("before", before), ("after align_stems", after.stems))):
        for row, name in enumerate(names):
            ax = axes[row, col]
            # short frames (64 ms, 8 ms hops): a click's peak lands within a few ms of it
            envelope = librosa.onset.onset_strength(y=np.atleast_2d(stems[name]).mean(axis=0),
                                                    sr=sr, n_fft=1024, hop_length=128)
            times = librosa.times_like(envelope, sr=sr, hop_length=128)
            for beat in np.arange(0, shown_s + 1e-9, 60 / bpm):
                ax.axvline(beat, color="0.8", linewidth=0.6)
            ax.plot(times, envelope / max(envelope.max(), 1e-9), linewidth=0.8)
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center")
            else:
                r = after.report[name]
                ax.text(1.01, 0.5, f"x{r['stretch_ratio']:.3f}\n{r['offset_s']:+.3f} s\n"
                        f"{r['semitones']:+d} st", transform=ax.transAxes, fontsize=8,
                        va="center")
        axes[0, col].set_title(title)
        axes[-1, col].set_xlabel("time (s)")
    axes[0, 0].set_xlim(0, shown_s)
    fig.suptitle(f"onset strength on the {bpm:g} BPM grid (grey): the bass and the clicks drift "
                 "before, and sit on it after", fontsize=10)
    fig.tight_layout()
    return fig


def alignment_run():
    from musicstems import align_stems, compose

    sr, bpm = 16000, 120.0
    loops = misaligned_loops(sr, bpm)
    # the chords the bass was written on: a sketch song with the bass's own settings
    plan = compose({"bass": "synth bass"}, bpm=bpm, key="A minor", duration_s=12, seed=1,
                   backend="sketch", progress=False, cache=False).plan
    aligned = align_stems(loops, sr, bpm=bpm, key="A minor", reference="drums",
                          chords=[c.pitch_classes for c in plan.chords], bar_s=plan.bar_s)
    return loops, aligned, sr


# ---------------------------------------------------------------- all of them


def main(argv: list[str] | None = None) -> list[Path]:
    """Write every picture into OUT_DIR (``argv[0]``, default docs/images); returns the paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else HERE / "images"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as scratch:
        song, stages = pipeline_run(Path(scratch))
        written.append(_save(draw_pipeline(song, stages, Path(scratch) / "song"),
                             out / "pipeline.png"))
    demo = demo_song()
    written.append(_save(demo.plot(figsize=(11, 7.5)), out / "demo-song.png"))
    loops, aligned, sr = alignment_run()
    written.append(_save(draw_alignment(loops, aligned, sr), out / "alignment.png"))
    for path in written:
        print(path)
    return written


if __name__ == "__main__":
    main()
