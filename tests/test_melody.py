"""MusicGen-Melody: the chroma, made with librosa, against transformers' own extractor code;
the model hears it (two chromas, two songs; one chroma, one song -- transformers once shipped
a release that silently dropped it, issue #45647); drums never; bad arguments refused before
any model loads."""

from __future__ import annotations

import types

import numpy as np
import pytest

from musicstems import Stem, compose
from musicstems.errors import MusicStemsError

torch = pytest.importorskip("torch")

from reference_codes import generate_codes  # noqa: E402 - needs torch

STEMS = {"drums": "punchy four on the floor techno drums", "bass": "deep rolling acid bassline",
         "pads": "warm evolving analog pads"}


@pytest.fixture(scope="module")
def melody_model(tmp_path_factory):
    from musicstems.testing import tiny_musicgen

    return str(tiny_musicgen(tmp_path_factory.mktemp("tiny-melody"), melody=True,
                             responsive=True))


def _extractor_chroma(audio: np.ndarray) -> np.ndarray:
    """transformers' MusicgenMelodyFeatureExtractor._torch_extract_fbank_features, run as it
    is, with torchaudio's Spectrogram (not installable here) written out by its definition:
    a centred, reflect-padded periodic-Hann STFT, normalised by the window's energy, power 2."""
    from transformers.audio_utils import chroma_filter_bank
    from transformers.models.musicgen_melody.feature_extraction_musicgen_melody import \
        MusicgenMelodyFeatureExtractor

    n_fft, hop = 16384, 4096
    window = torch.hann_window(n_fft)

    def spectrogram(waveform):
        spec = torch.stft(waveform, n_fft, hop, n_fft, window, center=True, pad_mode="reflect",
                          normalized=False, onesided=True, return_complex=True)
        return (spec / window.pow(2).sum().sqrt()).abs().pow(2)

    extractor = types.SimpleNamespace(n_fft=n_fft, spectrogram=spectrogram, chroma_filters=(
        torch.from_numpy(chroma_filter_bank(sampling_rate=32000, num_frequency_bins=n_fft,
                                            tuning=0, num_chroma=12)).float()))
    waveform = torch.from_numpy(audio.astype(np.float32))[None]
    return MusicgenMelodyFeatureExtractor._torch_extract_fbank_features(extractor,
                                                                          waveform)[0].numpy()


def test_the_chroma_is_the_extractors():
    from musicstems.conditioning import chroma
    from musicstems.plan import make_plan
    from musicstems.spec import validate_compose_args
    from musicstems.synth.render import render_part

    spec = validate_compose_args(STEMS, bpm=128, key="A minor", duration_s=6, seed=3,
                                 backend="sketch")
    plan = make_plan(spec)
    for name in ("bass", "pads"):
        audio = render_part(plan.parts[name], plan, 32000, 6 * 32000)
        ours, theirs = chroma(audio, 32000), _extractor_chroma(audio.mean(axis=0))
        assert ours.shape == theirs.shape == (1 + 6 * 32000 // 4096, 12)
        np.testing.assert_array_equal(ours, theirs)
    # a known answer: A 440 Hz is pitch class 9 in every frame; at 48 kHz it is resampled
    t = np.arange(3 * 48000) / 48000
    tone = chroma(0.3 * np.sin(2 * np.pi * 440 * t)[None], 48000)
    assert tone.shape == (1 + 3 * 32000 // 4096, 12) and (tone.argmax(axis=1) == 9).all()
    # the control: a tone a semitone up reads otherwise
    assert (chroma(0.3 * np.sin(2 * np.pi * 466.16 * t), 48000).argmax(axis=1) == 10).all()


def test_a_melody_model_is_recognised_from_its_config(melody_model, tiny_model):
    from musicstems.conditioning import is_melody_model

    assert is_melody_model(melody_model) and not is_melody_model(tiny_model)
    # a hub id that is not cached: by its name
    assert is_melody_model("facebook/musicgen-melody")
    assert not is_melody_model("facebook/musicgen-small")


def _codes(model, inputs, features, seed):
    """The codes generate hands to the codec, given ``input_features``."""
    return generate_codes(model, inputs, seed, input_features=features, guidance_scale=3.0,
                          max_new_tokens=24)


def test_the_model_hears_the_chroma(melody_model):
    # transformers once shipped a MusicGen-Melody that dropped input_features (#45647):
    # the same chroma gives the same codes, another chroma others
    from musicstems.backends.melody import melody_features, null_chroma
    from musicstems.backends.musicgen import load_model

    loaded = load_model(melody_model, device="cpu", precision="fp32", quiet=True)
    inputs = loaded.processor(text=["deep bass", "warm pads"], padding=True,
                              return_tensors="pt")
    # a line on A against one on E: the tiny decoder averages over its 235 chroma frames, so
    # two random sequences of every pitch class would be nearly one input to it
    one = np.eye(12, dtype=np.float32)[[9, 9, 0, 4] * 10]
    other = np.eye(12, dtype=np.float32)[[4, 4, 11, 7] * 10]
    features = melody_features(loaded.model, [one, one])
    assert features.shape == (2, 40, 12)
    first = _codes(loaded.model, inputs, features, 5)
    again = _codes(loaded.model, inputs, melody_features(loaded.model, [one, one]), 5)
    changed = _codes(loaded.model, inputs, melody_features(loaded.model, [other, one]), 5)
    assert torch.equal(first, again)
    assert (changed[:, 0] != first[:, 0]).float().mean() > 0.3  # the row that changed
    assert torch.equal(changed[:, 1], first[:, 1])  # rows do not hear each other's chroma
    # a row without a chroma gets the model's own "no melody", as generate gives every row
    assert torch.equal(melody_features(loaded.model, [None, one])[0],
                       torch.from_numpy(null_chroma(40)))
    plain = _codes(loaded.model, inputs, None, 5)
    nulls = _codes(loaded.model, inputs, torch.from_numpy(np.stack([null_chroma(40)] * 2)), 5)
    assert torch.equal(plain, nulls)


def _song(model, stems=STEMS, **kwargs):
    return compose(stems, bpm=128, key="A minor", duration_s=0.6, seed=7, model=model,
                   precision="fp32", align=False, progress=False, **kwargs)


def test_tonal_stems_follow_their_planned_part_and_drums_nothing(melody_model):
    # (the same chroma, the same codes: test_the_model_hears_the_chroma)
    song, off = _song(melody_model), _song(melody_model, harmony=None)
    for name in STEMS:
        assert song.stems[name].shape == (1, round(0.6 * 32000))
    entries = {name: song.manifest["stems"][name]["harmony"] for name in STEMS}
    assert entries["drums"] is None and off.manifest["stems"]["bass"]["harmony"] is None
    for name in ("bass", "pads"):
        assert entries[name]["source"] == "plan part"
        # primer (47 frames of 640 samples) + song, in 4096-sample chroma frames
        assert entries[name]["frames"] == 1 + (47 * 640 + round(0.6 * 32000)) // 4096
        assert not np.array_equal(song.stems[name], off.stems[name])
    # drums hear no chroma either way: the same audio with harmony on and off
    np.testing.assert_array_equal(song.stems["drums"], off.stems["drums"])
    assert song.manifest["settings"]["harmony"] == "auto"


def test_a_melody_file_is_heard(melody_model, tmp_path):
    import soundfile

    t = np.arange(2 * 44100) / 44100
    for name, hz in (("hum.wav", 220.0), ("other.wav", 311.13)):
        soundfile.write(str(tmp_path / name), 0.3 * np.sin(2 * np.pi * hz * t), 44100)
    stems = [Stem("drums", STEMS["drums"]),
             Stem("lead", "hypnotic synth lead melody", melody=str(tmp_path / "hum.wav"))]
    hum = _song(melody_model, stems, harmony=None)
    other = _song(melody_model, [stems[0], Stem("lead", stems[1].prompt,
                                                melody=str(tmp_path / "other.wav"))],
                  harmony=None)
    entry = hum.manifest["stems"]["lead"]["harmony"]
    assert entry["source"] == "file" and entry["file"] == str(tmp_path / "hum.wav")
    assert hum.stems["lead"].shape == (1, round(0.6 * 32000))
    assert not np.array_equal(hum.stems["lead"], other.stems["lead"])
    np.testing.assert_array_equal(hum.stems["drums"], other.stems["drums"])


def test_bad_melody_arguments_fail_before_any_model_loads(melody_model, tiny_model, tmp_path,
                                                         monkeypatch):
    from musicstems.backends import musicgen

    def no_load(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(musicgen, "load_model", no_load)
    hum = tmp_path / "hum.wav"
    import soundfile

    soundfile.write(str(hum), np.zeros(3200), 32000)
    (tmp_path / "notes.txt").write_text("not audio")
    cases = [
        ([Stem("drums", STEMS["drums"], melody=str(hum))], {"model": melody_model},
         r"stem 'drums' is drums and has melody=.*drums take no melody"),
        ([Stem("lead", "synth lead", melody=str(tmp_path / "gone.wav"))],
         {"model": melody_model}, r"stem 'lead' has melody=.*gone.wav.*not a file"),
        ([Stem("lead", "synth lead", melody=str(tmp_path / "notes.txt"))],
         {"model": melody_model}, r"stem 'lead' has melody=.*notes.txt.*not audio"),
        ([Stem("lead", "synth lead", melody=str(hum))], {"backend": "sketch"},
         r"stem 'lead' melody=.* needs a melody model and backend='sketch'"),
        ([Stem("lead", "synth lead", melody=str(hum))], {"model": tiny_model},
         r"stem 'lead' melody=.* needs a melody model and model=.* is not one"),
        (STEMS, {"model": tiny_model, "harmony": "plan"},
         r"harmony='plan' needs a melody model.*or harmony=None"),
        (STEMS, {"model": melody_model, "harmony": "chords"}, r"harmony='chords' is not known"),
        (STEMS, {"model": melody_model, "primer": "x"}, r"primer='x' is not known"),
    ]
    for stems, kwargs, message in cases:
        with pytest.raises(MusicStemsError, match=message):
            compose(stems, progress=False, **kwargs)
    # the controls: the same stems with what the messages ask for pass the door
    from musicstems.spec import validate_compose_args

    validate_compose_args([Stem("lead", "synth lead", melody=str(hum))], model=melody_model)
    validate_compose_args(STEMS, model=tiny_model, harmony=None)
    validate_compose_args(STEMS, model=tiny_model)  # 'auto': off without a melody model


@pytest.mark.parametrize("precision, guidance, top_k, top_p, primed", [
    ("fp32", 3.0, 250, 0.0, True), ("fp32", 1.0, 20, 0.8, False), ("int8", 3.0, 250, 0.0, True),
    ("bf16", 3.0, 250, 0.0, False)])
def test_the_melody_loop_samples_as_generate_does(melody_model, precision, guidance, top_k,
                                                  top_p, primed):
    from musicstems.backends.decoding import SamplingSettings
    from musicstems.backends.melody import melody_features, sample_melody_codes
    from musicstems.backends.musicgen import load_model
    from musicstems.backends.cpu import cpu_features
    from musicstems.backends.primer import encode_primers, primer_values

    if precision == "bf16" and not cpu_features()["bf16"]:
        pytest.skip("bf16 is emulated, and not packed, on a CPU without native bf16")
    loaded = load_model(melody_model, device="cpu", precision=precision, quiet=True)
    model = loaded.model
    inputs = loaded.processor(text=["deep bass", "punchy drums", "warm pads"], padding=True,
                              return_tensors="pt")
    line = np.eye(12, dtype=np.float32)[[9, 9, 0, 4] * 10]
    features = melody_features(model, [line, None, line[::-1].copy()])
    rng = np.random.default_rng(1)
    audio = [0.3 * rng.standard_normal((2, 10 * 640)).astype(np.float32) for _ in range(3)]
    prefix = encode_primers(model, primer_values(model, audio)) if primed else None
    steps = 20

    def ours(chroma):
        with torch.random.fork_rng(), torch.inference_mode():
            torch.manual_seed(3)
            return sample_melody_codes(model, inputs["input_ids"], inputs["attention_mask"],
                                       chroma, SamplingSettings(steps, guidance, 1.0, top_k,
                                                                top_p),
                                       prepared=loaded.prepared, prefix_codes=prefix)[0]

    caught = []
    decode = model.audio_encoder.decode
    model.audio_encoder.decode = lambda codes, **kw: (caught.append(codes.clone()),
                                                      decode(codes, **kw))[1]
    try:
        with torch.random.fork_rng(), torch.inference_mode():
            torch.manual_seed(3)
            extra = {} if prefix is None else {"decoder_input_ids": prefix.flatten(0, 1)}
            model.generate(**inputs, input_features=features, do_sample=True,
                           guidance_scale=guidance, top_k=top_k, top_p=top_p or None,
                           max_new_tokens=steps, **extra)
    finally:
        del model.audio_encoder.decode
    codes = ours(features)
    assert codes.shape == (1, 3, 4, (10 if primed else 0) + steps + 1 - 4)
    assert torch.equal(codes, caught[0])
    # the control: without the chroma the tonal rows change, the drums row does not
    plain = ours(None)
    assert (plain[:, 0] != codes[:, 0]).float().mean() > 0.3
    assert torch.equal(plain[:, 1], codes[:, 1])


def test_a_melody_song_is_the_same_through_generate(melody_model, monkeypatch):
    # compose's own loop against the fallback through transformers' generate, with the
    # primer and the planned parts' chroma; the codecs differ (windowed vs whole), hence the
    # tolerance, as test_primer's fallback test
    from musicstems.backends import melody

    ours = _song(melody_model)
    assert ours.manifest["backend"]["sampler"] == "musicstems"
    monkeypatch.setattr(melody, "unsupported_reason", lambda model: "a test says so")
    theirs = _song(melody_model)
    assert theirs.manifest["backend"]["sampler"] == "transformers generate"
    assert theirs.manifest["backend"]["sampler_reason"] == "a test says so"
    for name in STEMS:
        peak = np.abs(theirs.stems[name]).max()
        np.testing.assert_allclose(ours.stems[name], theirs.stems[name], rtol=0,
                                   atol=1e-5 * peak)
