"""The edit loop: regenerate, remix, load -> edit, compose_from, and the CLI's edit commands.

Songs are short (sketch 8 s, tiny MusicGen 2.5 s) so the file runs in seconds; every property
is measured on the audio: bit-identical arrays (``np.array_equal``), loudness in LUFS within
0.5 LU of the target (BS.1770 gating makes a mastered mix land within 0.05 LU; 0.5 LU is the
tolerance a listener would not hear), the true peak at or under the ceiling.
"""

from __future__ import annotations

import json
import time
import warnings

import numpy as np
import pytest

from musicstems import Composition, MusicStemsError, compose, compose_from
from musicstems.loudness import integrated_lufs, master, true_peak_dbtp
from musicstems.mix import mix_stems

STEMS = {"drums": "punchy four on the floor techno drums", "bass": "deep rolling acid bassline",
         "pads": "warm evolving analog pads"}


def _quiet(call, *args, **kwargs):
    with warnings.catch_warnings():  # fit warnings of random stems are not this file's subject
        warnings.simplefilter("ignore")
        return call(*args, **kwargs)


@pytest.fixture(scope="module")
def sketch_song():
    return _quiet(compose, STEMS, style="dark berlin techno", bpm=128, key="A minor",
                  duration_s=8, seed=7, backend="sketch", progress=False)


def _same(a, b, names):
    return {name: np.array_equal(a.stems[name], b.stems[name]) for name in names}


# -- regenerate -----------------------------------------------------------------------------

def test_regenerate_changes_the_one_and_keeps_the_others_bit_identical(sketch_song):
    new = _quiet(sketch_song.regenerate, "bass", seed=9, progress=False)
    assert _same(new, sketch_song, STEMS) == {"drums": True, "bass": False, "pads": True}
    assert not np.array_equal(new.mix, sketch_song.mix)  # the mix was made again
    assert new.stems["bass"].shape == sketch_song.stems["bass"].shape  # exact to the sample
    # same grid, key and loudness settings: levelled to stem_lufs, mastered to the target
    assert abs(integrated_lufs(new.stems["bass"], new.sample_rate) - (-20.0)) < 0.5
    assert abs(integrated_lufs(new.mix, new.sample_rate) - (-14.0)) < 0.5
    assert true_peak_dbtp(new.mix) <= -1.0 + 1e-6
    entry = new.manifest["stems"]["bass"]
    assert entry["seed"] == 9 and entry["seed_given"]
    assert new.manifest["plan"]["stems"]["bass"] != sketch_song.manifest["plan"]["stems"]["bass"]
    assert new.manifest["plan"]["stems"]["drums"] == \
        sketch_song.manifest["plan"]["stems"]["drums"]
    assert new.manifest["plan"]["chords"] == sketch_song.manifest["plan"]["chords"]
    assert sketch_song.manifest.get("edits") is None  # the song given is not changed


def test_regenerate_with_its_own_seed_gives_the_same_stem_back(sketch_song):
    seed = sketch_song.manifest["stems"]["bass"]["seed"]
    same = _quiet(sketch_song.regenerate, "bass", seed=seed, progress=False)
    assert all(_same(same, sketch_song, STEMS).values())
    assert np.array_equal(same.mix, sketch_song.mix)
    other = _quiet(sketch_song.regenerate, "bass", seed=seed + 1, progress=False)  # control
    assert not np.array_equal(other.stems["bass"], sketch_song.stems["bass"])


def test_regenerate_draws_and_records_a_new_seed(sketch_song):
    new = _quiet(sketch_song.regenerate, "pads", progress=False)
    edit = new.edits[-1]
    assert edit["edit"] == "regenerate" and edit["stem"] == "pads" and edit["seed_drawn"]
    assert edit["seed"] != sketch_song.manifest["stems"]["pads"]["seed"]
    assert new.manifest["stems"]["pads"]["seed"] == edit["seed"]
    assert not np.array_equal(new.stems["pads"], sketch_song.stems["pads"])


def test_regenerate_with_a_new_prompt_rebuilds_the_prompt_sent(sketch_song):
    new = _quiet(sketch_song.regenerate, "bass", prompt="  dark   reese bass ", seed=3,
                 progress=False)
    assert new.manifest["stems"]["bass"]["prompt"] == "dark reese bass"
    assert new.prompts["bass"] == "dark reese bass, dark berlin techno, 128 bpm, in A minor"
    assert new.prompts["drums"] == sketch_song.prompts["drums"]


@pytest.mark.parametrize("call, needle", [
    (lambda s: s.regenerate("bas"), "did you mean 'bass'"),
    (lambda s: s.regenerate("bass", seed=-1), "seed=-1"),
    (lambda s: s.regenerate("bass", prompt="  "), "prompt="),
    (lambda s: s.remix(gain_db={"drum": -3}), "did you mean 'drums'"),
    (lambda s: s.remix(gain_db={"drums": 99}), "gain_db['drums']"),
    (lambda s: s.remix(pan={"pads": 1.5}), "pan['pads']"),
    (lambda s: s.remix(mute="lead"), "not a list"),
    (lambda s: s.remix(mute=list(STEMS)), "mutes every stem"),
    (lambda s: s.remix(gain_db=[("drums", -3)]), "not a dict"),
])
def test_bad_edits_are_refused_naming_argument_value_and_fix(sketch_song, call, needle):
    with pytest.raises(MusicStemsError) as info:
        call(sketch_song)
    assert needle in str(info.value)


# -- remix ----------------------------------------------------------------------------------

def test_remix_gain_pan_and_mute_are_measured(sketch_song):
    sr = sketch_song.sample_rate
    remixed = sketch_song.remix(gain_db={"drums": -3}, pan={"pads": -0.3}, mute=["bass"])
    # the drums stem is 3 dB down, measured (BS.1770 is scale-exact to float rounding)
    change = integrated_lufs(remixed.stems["drums"], sr) - \
        integrated_lufs(sketch_song.stems["drums"], sr)
    assert abs(change - (-3.0)) < 0.01
    assert np.array_equal(remixed.stems["pads"], sketch_song.stems["pads"])  # pan is in the mix
    assert abs(integrated_lufs(remixed.mix, sr) - (-14.0)) < 0.5
    assert true_peak_dbtp(remixed.mix) <= -1.0 + 1e-6
    # bass muted: the mix is exactly a mix of the others with these settings
    others = {name: remixed.stems[name] for name in ("drums", "pads")}
    mixed, _ = mix_stems(others, sr, pans={"drums": 0.0, "pads": -0.3})
    expected, _ = master(mixed, sr, target_lufs=-14.0, ceiling_dbfs=-1.0)
    assert np.array_equal(remixed.mix, expected)
    with_bass, _ = mix_stems(remixed.stems, sr, pans={"drums": 0.0, "bass": 0.0, "pads": -0.3})
    assert not np.array_equal(remixed.mix, master(with_bass, sr)[0])  # the control
    # the pads lean left: the left channel of the pads' share is louder
    assert remixed.muted == ["bass"] and "bass" in remixed.stems  # still a stem of the song
    assert remixed.manifest["stems"]["pads"]["pan"] == -0.3


def test_remix_pan_moves_the_stem_left():
    song = _quiet(compose, {"pads": "warm evolving analog pads"}, bpm=120, duration_s=4,
                  seed=1, backend="sketch", progress=False, align=False)
    left = song.remix(pan={"pads": -0.8}).mix
    centre = song.mix
    balance = lambda mix: float(np.sum(mix[0] ** 2) / np.sum(mix[1] ** 2))  # noqa: E731
    assert balance(left) > 2.0 * balance(centre)


def test_remix_is_fast_and_generates_nothing():
    song = _quiet(compose, {"drums": "techno drums", "bass": "acid bass", "pads": "pads",
                            "lead": "plucked lead"}, bpm=128, duration_s=30, seed=2,
                  backend="sketch", progress=False, align=False)
    start = time.perf_counter()
    song.remix(gain_db={"drums": -3}, pan={"pads": -0.3}, mute=["lead"])
    seconds = time.perf_counter() - start
    # "well under a second" on a quiet machine; 3 s leaves room for a loaded test machine,
    # while a remix that generated or aligned again would take several times that
    assert seconds < 3.0


def test_remix_unmute_and_gain_back(sketch_song):
    muted = sketch_song.remix(mute=["pads"])
    back = muted.remix(mute=[])
    assert back.muted == [] and np.array_equal(back.mix, sketch_song.mix)
    assert [edit["edit"] for edit in back.edits] == ["remix", "remix"]


# -- load, save, compose_from ---------------------------------------------------------------

def test_load_then_edit_equals_fresh_then_edit(sketch_song, tmp_path):
    loaded = Composition.load(sketch_song.save(tmp_path / "song"))
    fresh_mix = sketch_song.remix(gain_db={"bass": 2}, mute=["pads"])
    loaded_mix = loaded.remix(gain_db={"bass": 2}, mute=["pads"])
    assert np.array_equal(fresh_mix.mix, loaded_mix.mix)
    fresh = _quiet(sketch_song.regenerate, "bass", seed=11, progress=False)
    again = _quiet(loaded.regenerate, "bass", seed=11, progress=False)
    assert np.array_equal(fresh.mix, again.mix)
    assert np.array_equal(fresh.stems["bass"], again.stems["bass"])


def test_compose_from_a_saved_edited_song_is_bit_identical(sketch_song, tmp_path):
    edited = _quiet(sketch_song.regenerate, "bass", progress=False)  # a drawn seed
    edited = edited.remix(gain_db={"drums": -2}, pan={"pads": 0.4}, mute=["pads"])
    folder = edited.save(tmp_path / "edited")
    again = _quiet(compose_from, folder / "manifest.json")
    assert np.array_equal(again.mix, edited.mix)
    assert all(_same(again, edited, STEMS).values())
    assert again.muted == ["pads"]
    assert [e["stems"] for e in again.edits] == [e["stems"] for e in edited.edits]
    # the control: without its edits the manifest gives the song as composed, not the edit
    plain = json.loads((folder / "manifest.json").read_text())
    plain.pop("edits")
    plain["stems"] = {name: {**entry, **plain["composed"]["stems"][name]}
                      for name, entry in plain["stems"].items()}
    assert not np.array_equal(_quiet(compose_from, plain).mix, edited.mix)


def test_compose_from_an_unedited_song(sketch_song):
    again = _quiet(compose_from, sketch_song.manifest)
    assert np.array_equal(again.mix, sketch_song.mix)


def test_compose_from_refuses_what_is_not_a_manifest(tmp_path):
    with pytest.raises(MusicStemsError, match="does not exist"):
        compose_from(tmp_path)
    with pytest.raises(MusicStemsError, match="no 'settings'"):
        compose_from({"stems": {}})
    with pytest.raises(MusicStemsError, match="neither a manifest"):
        compose_from(42)


# -- tiny MusicGen --------------------------------------------------------------------------

def test_tiny_musicgen_regenerate_align_remix_and_rerun(tiny_model):
    # two stems, aligned, 2 s: the smallest song that runs every stage of the edit loop
    stems = {name: STEMS[name] for name in ("drums", "bass")}
    song = _quiet(compose, stems, bpm=128, key="A minor", duration_s=2.0, seed=9,
                  model=tiny_model, device="cpu", progress=False)
    new = _quiet(song.regenerate, "bass", seed=5, progress=False)
    assert _same(new, song, stems) == {"drums": True, "bass": False}
    assert new.stems["bass"].shape == song.stems["bass"].shape
    assert new.manifest["alignment"]["stems"]["bass"] is not None
    assert abs(integrated_lufs(new.mix, new.sample_rate) - (-14.0)) < 0.5
    # the stem's seed decides it: the same seed again gives the same stem, another another
    same = _quiet(song.regenerate, "bass", seed=5, progress=False)
    assert np.array_equal(same.stems["bass"], new.stems["bass"])
    other = _quiet(song.regenerate, "bass", seed=6, progress=False)
    assert not np.array_equal(other.stems["bass"], new.stems["bass"])
    remixed = new.remix(gain_db={"drums": -4})
    again = _quiet(compose_from, remixed.manifest)
    assert np.array_equal(again.mix, remixed.mix)
    assert all(_same(again, remixed, stems).values())


# -- CLI ------------------------------------------------------------------------------------

def test_cli_regenerate_and_remix_end_to_end(sketch_song, tmp_path, capsys):
    from musicstems.cli import main
    from musicstems.export import read_audio

    source = sketch_song.save(tmp_path / "out")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["regenerate", str(source), "bass", "--seed", "9", "--quiet",
                     "--out", str(tmp_path / "out2")]) == 0
    regenerated = Composition.load(tmp_path / "out2")
    assert regenerated.manifest["stems"]["bass"]["seed"] == 9
    assert np.array_equal(regenerated.stems["drums"], sketch_song.stems["drums"])
    expected = _quiet(sketch_song.regenerate, "bass", seed=9, progress=False)
    assert np.array_equal(regenerated.mix, expected.mix)

    assert main(["remix", str(tmp_path / "out2"), "--gain", "drums=-3", "--pan", "pads=-0.3",
                 "--mute", "bass", "--out", str(tmp_path / "out3")]) == 0
    remixed = Composition.load(tmp_path / "out3")
    assert remixed.muted == ["bass"]
    assert np.array_equal(remixed.mix, expected.remix(gain_db={"drums": -3},
                                                      pan={"pads": -0.3}, mute=["bass"]).mix)
    assert read_audio(tmp_path / "out3" / "stems" / "bass.wav")[0].shape[-1] == \
        sketch_song.mix.shape[-1]  # a muted stem keeps its file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["compose", str(tmp_path / "out3" / "manifest.json"), "--quiet",
                     "--out", str(tmp_path / "out4")]) == 0
    assert np.array_equal(Composition.load(tmp_path / "out4").mix, remixed.mix)
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("args, needle", [
    (["regenerate", "{song}", "bas", "--out", "{tmp}/x"], "did you mean 'bass'"),
    (["remix", "{song}", "--gain", "drums", "--out", "{tmp}/x"], "--gain 'drums' is not NAME=VALUE"),
    (["remix", "{song}", "--gain", "drum=-3", "--out", "{tmp}/x"], "--gain names 'drum'"),
    (["remix", "{song}", "--gain", "drums=-300", "--out", "{tmp}/x"], "--gain drums=-300 is"),
    (["remix", "{song}", "--pan", "pads=2", "--out", "{tmp}/x"], "--pan pads=2 is"),
    (["remix", "{song}", "--mute", "drums", "--out", "{song}"], "--overwrite"),
    (["regenerate", "{song}", "bass", "--out", "{song}"], "--overwrite"),
    (["compose", "{song}", "--bpm", "100", "--out", "{tmp}/x"], "cannot also take --bpm"),
    (["regenerate", "{tmp}/nothing", "bass", "--out", "{tmp}/x"], "is not a folder"),
])
def test_cli_edit_refusals_exit_2_with_one_line(sketch_song, tmp_path, capsys, args, needle):
    from musicstems.cli import main

    song = sketch_song.save(tmp_path / "song")
    argv = [a.format(song=song, tmp=tmp_path) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()  # nothing written


def test_the_guide_edit_loop_snippet_runs(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    guide = (Path(__file__).parent.parent / "docs" / "guide.md").read_text(encoding="utf-8")
    section = guide[guide.index("## The edit loop"):]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(snippet, "docs/guide.md", "exec"), {})  # its asserts are the checks
    assert (tmp_path / "out" / "edited" / "stems" / "pads.wav").is_file()  # muted, kept
