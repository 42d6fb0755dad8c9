"""The audio primer: a count-in rendered from the plan, continued by MusicGen.

The loop's codes with a primer are held to transformers' ``generate(input_values=...)`` with
the same audio, bit for bit (as tests/test_decoding.py does for text alone), with a different
primer as the control; the song around it to exact lengths and a manifest entry per stem.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from musicstems import compose
from musicstems.errors import MusicStemsError

torch = pytest.importorskip("torch")

from reference_codes import generate_codes  # noqa: E402 - needs torch

PROMPTS = ["punchy techno drums with a long rolling tail", "acid bass", "warm evolving pads"]
STEMS = {"drums": "punchy four on the floor techno drums", "bass": "deep rolling acid bassline",
         "pads": "warm evolving analog pads"}
HOP = 640  # samples per codec frame at 32 kHz, 50 frames/s


@pytest.fixture(scope="module")
def responsive_model(tmp_path_factory):
    """The tiny model with a decoder that hears its input: at the default tiny weights a
    different primer changes 1 code in 300, since the sampler's random numbers decide."""
    from musicstems.testing import tiny_musicgen

    return str(tiny_musicgen(tmp_path_factory.mktemp("responsive"), responsive=True))


def _primer_audio(seed: int, frames: int = 12) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [0.3 * rng.standard_normal((2, frames * HOP)).astype(np.float32) for _ in PROMPTS]


def _generate_codes(model, inputs, values, seed, **sampling):
    """The codes generate hands to the codec, given ``input_values``."""
    return generate_codes(model, inputs, seed, input_values=values, **sampling)


def _loop_codes(model, inputs, values, seed, settings, prepared=None):
    from musicstems.backends.decoding import sample_codes
    from musicstems.backends.primer import encode_primers

    with torch.random.fork_rng(), torch.inference_mode():
        torch.manual_seed(seed)
        prefix = encode_primers(model, values)
        return sample_codes(model, inputs["input_ids"], inputs["attention_mask"], settings,
                            prepared=prepared, prefix_codes=prefix)[0]


@pytest.mark.parametrize("precision, guidance, top_k, top_p", [
    ("fp32", 3.0, 250, 0.0), ("fp32", 1.0, 20, 0.0), ("fp32", 3.0, 250, 0.8),
    ("int8", 3.0, 250, 0.0), ("bf16", 3.0, 250, 0.0)])
def test_the_loop_continues_a_primer_as_generate_does(responsive_model, precision, guidance,
                                                      top_k, top_p):
    from musicstems.backends.decoding import SamplingSettings
    from musicstems.backends.musicgen import load_model
    from musicstems.backends.cpu import cpu_features
    from musicstems.backends.primer import primer_values

    if precision == "bf16" and not cpu_features()["bf16"]:
        pytest.skip("bf16 is emulated, and not packed, on a CPU without native bf16")
    loaded = load_model(responsive_model, device="cpu", precision=precision, quiet=True)
    model = loaded.model
    inputs = loaded.processor(text=PROMPTS, padding=True, return_tensors="pt")
    values = primer_values(model, _primer_audio(0))
    steps = 30
    settings = SamplingSettings(steps, guidance, 1.0, top_k, top_p)
    expected = _generate_codes(model, inputs, values, 3, guidance_scale=guidance,
                               max_new_tokens=steps, top_k=top_k, top_p=top_p or None)
    # the recipe's fused products, the KV cache in the activations' dtype, as test_decoding
    # compares reduced precision
    exact = replace(loaded.prepared, kv_dtype=None)
    codes = _loop_codes(model, inputs, values, 3, settings, exact)
    assert codes.shape == (1, len(PROMPTS), 4, 12 + steps + 1 - 4)  # primer frames first
    assert torch.equal(codes, expected)
    # the primer's own codes open the output, and a different primer changes what follows
    # (most of it: 60-90 % of the codes at these settings)
    other = _loop_codes(model, inputs, primer_values(model, _primer_audio(1)), 3, settings,
                        exact)
    assert (other[..., 12:] != codes[..., 12:]).float().mean() > 0.3
    if loaded.prepared.kv_dtype is not None:  # the cache the backend really uses runs too
        ours = _loop_codes(model, inputs, values, 3, settings, loaded.prepared)
        assert ours.shape == codes.shape


def test_stereo_primers_are_encoded_side_by_side_as_generate_does(tmp_path):
    from musicstems.backends.decoding import SamplingSettings
    from musicstems.backends.musicgen import load_model
    from musicstems.backends.primer import primer_values
    from musicstems.testing import tiny_musicgen

    loaded = load_model(str(tiny_musicgen(tmp_path / "stereo", stereo=True)), device="cpu",
                        precision="fp32", quiet=True)
    inputs = loaded.processor(text=PROMPTS, padding=True, return_tensors="pt")
    values = primer_values(loaded.model, _primer_audio(2))
    assert values.shape == (len(PROMPTS), 2, 12 * HOP)
    expected = _generate_codes(loaded.model, inputs, values, 4, guidance_scale=3.0,
                               max_new_tokens=24)
    codes = _loop_codes(loaded.model, inputs, values, 4, SamplingSettings(24, 3.0))
    assert codes.shape == (1, len(PROMPTS), 8, 12 + 24 + 1 - 4)
    assert torch.equal(codes, expected)


def test_the_prefill_is_the_steps_it_replaces(tiny_model):
    # one pass over the known positions gives the logits of stepping through them one by one
    # (to fp32 rounding: the products have other shapes)
    from musicstems.backends.decoding import DecoderStep, encode_text
    from musicstems.backends.musicgen import load_model

    loaded = load_model(tiny_model, device="cpu", precision="fp32", quiet=True)
    inputs = loaded.processor(text=PROMPTS, padding=True, return_tensors="pt")
    codes = torch.arange(len(PROMPTS) * 2 * 4 * 9).view(2 * len(PROMPTS), 4, 9) % 64
    with torch.inference_mode():
        states, mask = encode_text(loaded.model, inputs["input_ids"], inputs["attention_mask"],
                                   guided=True)
        one = DecoderStep(loaded.model, 2 * len(PROMPTS), 12)
        one.set_encoder(states, mask)
        prefilled = [one.prefill(codes), one(codes[:, :, 0])]
        stepped = DecoderStep(loaded.model, 2 * len(PROMPTS), 12)
        stepped.set_encoder(states, mask)
        for t in range(9):
            last = stepped(codes[:, :, t])
        after = stepped(codes[:, :, 0])
    torch.testing.assert_close(prefilled[0], last, rtol=0, atol=1e-5)
    torch.testing.assert_close(prefilled[1], after, rtol=0, atol=1e-5)
    assert not torch.allclose(prefilled[0], after, atol=1e-3)  # the control: other positions


def test_primers_are_whole_frames_that_end_on_the_downbeat():
    from musicstems.conditioning import PRIMER_MAX_S, primer_beats, render_primers
    from musicstems.plan import make_plan
    from musicstems.spec import validate_compose_args

    for bpm in (60, 90, 128, 174):
        spec = validate_compose_args(STEMS, bpm=bpm, key="A minor", duration_s=8, seed=3,
                                     backend="sketch")
        plan = make_plan(spec)
        primers = render_primers(plan, list(STEMS), 32000, HOP)
        beats = primer_beats(plan)
        sounding = round(beats * plan.beat_s * 32000)
        assert beats * plan.beat_s <= PRIMER_MAX_S + 1e-9 or beats == 1
        for name, primer in primers.items():
            samples = primer.audio.shape[-1]
            assert primer.audio.shape[0] == 2 and primer.audio.dtype == np.float32
            assert samples % HOP == 0 and sounding <= samples < sounding + HOP
            assert not primer.audio[:, :samples - sounding].any()  # silence before beat 1
            assert np.abs(primer.audio).max() == pytest.approx(0.5, abs=1e-6)
            # the bass's first bar rests on its last beats at these tempos: its chord's root
            assert primer.source == ("first chord" if name == "bass" and bpm > 100
                                     else "plan part"), (bpm, name)


def test_a_silent_part_gets_a_click_on_the_beats():
    from dataclasses import replace

    from musicstems.conditioning import render_primers
    from musicstems.plan import make_plan
    from musicstems.spec import validate_compose_args

    spec = validate_compose_args({"drums": STEMS["drums"], "pads": STEMS["pads"]}, bpm=120,
                                 duration_s=8, seed=3, backend="sketch")
    plan = make_plan(spec)
    silent = {n: replace(p, notes=()) for n, p in plan.parts.items()}
    primers = render_primers(replace(plan, parts=silent), ["drums", "pads"], 32000, HOP)
    assert (primers["drums"].source, primers["pads"].source) == ("click", "first chord")
    click = np.abs(primers["drums"].audio[0])
    # two hits (1 s of 0.5 s beats), the last ending the window: onsets where the level rises
    # above -40 dBFS after a 16th note (4000 samples) below it -- the hat's own noise bursts
    # come sooner -- padded, so a hit on the first sample counts
    quiet = 4000
    loud = np.concatenate([np.zeros(quiet), click]) > 0.01
    onsets = [i - quiet for i in range(quiet, loud.size)
              if loud[i] and not loud[i - quiet:i].any()]
    window = click.size
    beats = [window - round(k * 0.5 * 32000) for k in (2, 1)]
    # each hit starts on its beat; the hat's noise rises over its first 5 samples (0.16 ms)
    assert len(onsets) == 2 and all(0 <= o - b <= 8 for o, b in zip(onsets, beats)), onsets


def test_compose_with_a_primer_keeps_every_length_and_records_it(tiny_model):
    def song(primer, seed=7):
        return compose(STEMS, bpm=128, key="A minor", duration_s=1.3, seed=seed,
                       model=tiny_model, precision="fp32", align=False, progress=False,
                       primer=primer)

    primed, again, plain = song("plan"), song("plan"), song(None)
    from musicstems.conditioning import render_primers
    from musicstems.plan import make_plan
    from musicstems.spec import validate_compose_args

    made = render_primers(make_plan(validate_compose_args(
        STEMS, bpm=128, key="A minor", duration_s=1.3, seed=7, model=tiny_model)),
        list(STEMS), 32000, HOP)
    for name in STEMS:
        assert primed.stems[name].shape == (1, round(1.3 * 32000))
        np.testing.assert_array_equal(primed.stems[name], again.stems[name])
        assert not np.array_equal(primed.stems[name], plain.stems[name])
        entry = primed.manifest["stems"][name]["primer"]
        # what the renderer decided for this plan (a part resting on those beats gets its
        # chord instead: test_a_silent_part_gets_a_click_on_the_beats)
        assert entry["source"] == made[name].source
        assert entry["beats"] == 2
        assert entry["seconds"] == 47 * HOP / 32000  # 2 beats at 128 bpm = 46.875 frames
        assert plain.manifest["stems"][name]["primer"] is None
    assert primed.mix.shape[-1] == round(1.3 * 32000)
    assert "primer" not in plain.manifest["backend"]  # a song without one reports as before


def test_bad_conditioning_arguments_fail_before_any_model_loads(tiny_model, tmp_path,
                                                                monkeypatch):
    from musicstems import Stem
    from musicstems.backends import musicgen
    from musicstems.spec import validate_compose_args

    def no_load(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(musicgen, "load_model", no_load)
    with pytest.raises(MusicStemsError, match=r"primer='count-in' is not known"):
        compose(STEMS, model=tiny_model, primer="count-in", progress=False)
    # compose's harmony="plan" is its default, off without a melody model; said outright at
    # the door it is an error
    with pytest.raises(MusicStemsError, match=r"harmony='plan' needs a melody model"):
        validate_compose_args(STEMS, model=tiny_model, harmony="plan")
    with pytest.raises(MusicStemsError, match=r"stem 'lead' melody=.* needs a melody model"):
        compose([Stem("lead", "synth lead melody", melody=str(tmp_path / "hum.wav"))],
                model=tiny_model, progress=False)
