"""A song in a notebook: small players at the real levels, loudness and fit beside each stem,
play() and plot()."""

from __future__ import annotations

import base64
import io
import re
import sys

import numpy as np
import pytest
import soundfile

from musicstems import MusicStemsError, compose
from musicstems.display import player_html
from musicstems.loudness import integrated_lufs

STEMS = {"drums": "techno drums", "bass": "acid bass", "pads": "warm pads",
         "lead": "bright lead"}


@pytest.fixture(scope="module")
def song():
    return compose(STEMS, bpm=124, key="A minor", duration_s=10, seed=3, backend="sketch",
                   progress=False, cache=False)


def players(html: str) -> list[tuple[str, bytes]]:
    return [(mime, base64.b64decode(data)) for mime, data in
            re.findall(r"data:(audio/[a-z]+);base64,([A-Za-z0-9+/=]+)", html)]


def test_a_ten_second_four_stem_song_is_small_and_plays_at_its_real_levels(song):
    html = song._repr_html_()
    assert len(html.encode()) < 1.5e6  # the 16-bit WAV players were about 5 MB
    found = players(html)
    assert len(found) == len(STEMS) + 1
    for (mime, data), audio in zip(found, [song.mix, *song.stems.values()]):
        assert mime == "audio/mpeg"
        decoded, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
        assert rate == song.sample_rate
        # MP3 keeps the level (not rescaled to full scale) and the length (up to its frames)
        assert integrated_lufs(decoded.T, rate) == pytest.approx(
            integrated_lufs(audio, rate), abs=0.5)
        assert abs(len(decoded) - audio.shape[-1]) < 0.1 * rate


def test_each_stem_shows_its_loudness_and_fit(song):
    html = song._repr_html_()
    for name, entry in song.manifest["stems"].items():
        row = re.search(rf"<td>{name}</td>.*?</tr>", html, re.S).group(0)
        assert f"{entry['analysis']['integrated_lufs']:.1f} LUFS" in row
        assert ("fits the plan" if song.fit[name]["fits"] else "does not fit") in row


def test_a_long_stem_embeds_its_start_and_play_gives_all_of_it(song):
    short = player_html(song.stems["bass"], song.sample_rate, max_s=2.0)
    assert "first 2 s" in short
    (_, data), = players(short)
    assert soundfile.info(io.BytesIO(data)).duration == pytest.approx(2.0, abs=0.1)
    (_, whole), = players(song.play("bass")._repr_html_())
    assert soundfile.info(io.BytesIO(whole)).duration == pytest.approx(10.0, abs=0.1)
    with pytest.raises(MusicStemsError, match="'nope' is not a stem"):
        song.play("nope")


def test_plot_has_every_stem_the_chords_and_the_mix_loudness(song):
    import matplotlib

    matplotlib.use("Agg")
    for kind in ("waveform", "spectrogram"):
        fig = song.plot(kind)
        axes = fig.get_axes()
        assert [ax.get_ylabel() for ax in axes[:len(STEMS)]] == list(STEMS)
        labels = {text.get_text() for text in axes[0].texts}
        assert song.plan.chords[0].name in labels
        (line,) = axes[-1].get_lines()
        lufs = line.get_ydata()
        # the mastered mix's short-term loudness sits around its integrated -14 LUFS
        assert np.nanmedian(lufs) == pytest.approx(-14.0, abs=3.0)
        import matplotlib.pyplot as plt
        plt.close(fig)
    with pytest.raises(MusicStemsError, match="'waves' is not"):
        song.plot("waves")


def test_plot_without_matplotlib_names_the_extra(song, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(MusicStemsError, match=r"musicstems\[plot\]"):
        song.plot()
