"""musicstems' sampling loop against transformers' ``generate``.

The loop (``musicstems.backends.decoding``) promises the codes ``generate`` samples for the same
seed, only sooner: the same decoder arithmetic, guidance, temperature, top-k/top-p and
multinomial draws in the same order. These tests hold it to that on the tiny model, with
prompts of different lengths (so the text padding masks matter) and every sampling option.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from musicstems import compose

torch = pytest.importorskip("torch")

from reference_codes import generate_codes  # noqa: E402 - needs torch

PROMPTS = ["punchy techno drums with a long rolling tail", "acid bass", "warm evolving pads"]
STEMS = {"drums": "punchy techno drums", "bass": "deep rolling acid bassline"}


@pytest.fixture(scope="module")
def loaded(tiny_model):
    from musicstems.backends.musicgen import load_model

    return load_model(tiny_model, device="cpu", precision="fp32", quiet=True)


def _loop_codes(model, inputs, seed, settings):
    from musicstems.backends.decoding import sample_codes

    with torch.random.fork_rng(), torch.inference_mode():
        torch.manual_seed(seed)
        codes, _ = sample_codes(model, inputs["input_ids"], inputs["attention_mask"], settings)
    return codes


@pytest.mark.parametrize("temperature, top_k, top_p", [(1.0, 250, 0.0), (1.3, 20, 0.0),
                                                        (0.9, 250, 0.8)])
def test_the_loop_samples_the_codes_generate_samples(loaded, temperature, top_k, top_p):
    from musicstems.backends.decoding import SamplingSettings

    model = loaded.model
    inputs = loaded.processor(text=PROMPTS, padding=True, return_tensors="pt")
    assert (inputs["attention_mask"] == 0).any()  # padding is exercised
    steps = 40
    expected = generate_codes(model, inputs, 11, guidance_scale=3.0, max_new_tokens=steps,
                               temperature=temperature, top_k=top_k, top_p=top_p or None)
    codes = _loop_codes(model, inputs, 11, SamplingSettings(steps, 3.0, temperature, top_k,
                                                             top_p))
    assert codes.shape == (1, len(PROMPTS), 4, steps + 1 - 4)
    assert torch.equal(codes, expected)
    # and a different seed really samples different codes (the comparison can fail)
    other = _loop_codes(model, inputs, 12, SamplingSettings(steps, 3.0, temperature, top_k,
                                                             top_p))
    assert not torch.equal(other, expected)


def test_a_stems_own_stream_samples_what_generate_samples_for_it_alone(loaded):
    """A generator seeded with s draws what the global RNG seeded with s draws: each stem
    sampled alone from its own stream gets ``generate``'s codes for it, batch 1, under
    ``torch.manual_seed(s)``; in a batch of three, each stem's row still gets those codes
    (its own stream; the batch's float rounding, ~1e-7 of the logits here, moves no draw)."""
    from musicstems.backends.decoding import SamplingSettings, sample_codes
    from musicstems.backends.sampling import stem_streams

    seeds = [101, 202, 303]
    settings = SamplingSettings(40, 3.0, 1.0, 250, 0.0)

    def ours(prompts, stem_seeds):
        inputs = loaded.processor(text=prompts, padding=True, return_tensors="pt")
        with torch.inference_mode():
            codes, _ = sample_codes(loaded.model, inputs["input_ids"],
                                    inputs["attention_mask"], settings,
                                    streams=stem_streams(stem_seeds, "cpu"))
        return codes

    batch = ours(PROMPTS, seeds)
    for row, (prompt, seed) in enumerate(zip(PROMPTS, seeds)):
        inputs = loaded.processor(text=[prompt], padding=True, return_tensors="pt")
        expected = generate_codes(loaded.model, inputs, seed, guidance_scale=3.0,
                                  max_new_tokens=40)
        assert torch.equal(ours([prompt], [seed]), expected)
        assert torch.equal(batch[:, row:row + 1], expected)
    # the control: another stem's seed is another stream
    assert not torch.equal(ours(PROMPTS[:1], [seeds[1]]), batch[:, :1])


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_the_loop_matches_generate_in_reduced_precision_too(tiny_model, precision):
    # the recipes' packed and quantized layers are the model's own modules, which generate
    # runs too; the KV cache's dtype (chosen by the CPU: bf16 with AMX, else fp32) is the one
    # place the loop differs by design, so it is compared with the cache in the activations'
    # dtype
    from musicstems.backends.decoding import SamplingSettings, sample_codes
    from musicstems.backends.musicgen import load_model
    from musicstems.backends.cpu import cpu_features
    from transformers import AutoProcessor

    if not cpu_features()["bf16"] and precision == "bf16":
        pytest.skip("bf16 is emulated, and not packed, on a CPU without native bf16")
    loaded = load_model(tiny_model, device="cpu", precision=precision, quiet=True)
    model = loaded.model
    processor = AutoProcessor.from_pretrained(tiny_model)
    inputs = processor(text=PROMPTS, padding=True, return_tensors="pt")
    expected = generate_codes(model, inputs, 9, guidance_scale=3.0, max_new_tokens=30)
    with torch.random.fork_rng(), torch.inference_mode():
        torch.manual_seed(9)
        codes, _ = sample_codes(model, inputs["input_ids"], inputs["attention_mask"],
                                SamplingSettings(30, 3.0),
                                prepared=replace(loaded.prepared, kv_dtype=None))
    assert torch.equal(codes, expected)


def test_int8_layers_through_torchscript_give_the_eager_song(tiny_model, monkeypatch):
    """The scripted int8 layer is op for op the eager one: the same song, bit for bit, with the
    bf16 cache and the skipped cross-attention rows of a real int8 song."""
    from musicstems.backends import decoding, int8_layers
    from musicstems.backends.musicgen import load_model

    loaded = load_model(tiny_model, device="cpu", precision="int8", quiet=True)
    if decoding.DecoderStep(loaded.model, 2, 2, loaded.prepared).layer_runner != "torchscript":
        pytest.skip("int8 here is not musicstems' 8-bit recipe (no VNNI) or TorchScript "
                    "cannot compile: the eager loop runs, and the other tests cover it")

    def song():
        return compose(STEMS, duration_s=0.6, seed=5, model=tiny_model, align=False,
                       progress=False, precision="int8")

    # Logits first: a song can survive a small change of them (a random model's near-uniform
    # draws rarely flip), the logits cannot.
    inputs = loaded.processor(text=PROMPTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        states, mask = decoding.encode_text(loaded.model, inputs["input_ids"],
                                            inputs["attention_mask"], guided=True)
        steps = []
        for scripted in (True, False):
            step = decoding.DecoderStep(loaded.model, 2 * len(PROMPTS), 8, loaded.prepared)
            assert step.scripted is not None
            if not scripted:
                step.scripted = None
            step.set_encoder(states, mask)
            assert step.text_rows == len(PROMPTS)  # the skipped rows are exercised
            codes = torch.arange(2 * len(PROMPTS) * 4).view(-1, 4) % 64
            steps.append([step(codes + t) for t in range(5)])
    for ours, theirs in zip(*steps):
        assert torch.equal(ours, theirs)

    scripted = song()
    assert scripted.manifest["backend"]["decoder_layers"] == "torchscript"
    monkeypatch.setattr(int8_layers, "scripted_int8_layers", lambda: None)
    eager = song()
    assert eager.manifest["backend"]["decoder_layers"] == "eager"
    for name in STEMS:
        np.testing.assert_array_equal(scripted.stems[name], eager.stems[name])


def test_only_rows_with_text_go_through_cross_attention(loaded):
    from musicstems.backends.decoding import DecoderStep, encode_text

    inputs = loaded.processor(text=PROMPTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        for guided, rows in ((True, 2 * len(PROMPTS)), (False, len(PROMPTS))):
            states, mask = encode_text(loaded.model, inputs["input_ids"],
                                       inputs["attention_mask"], guided=guided)
            step = DecoderStep(loaded.model, rows, 4)
            step.set_encoder(states, mask)
            # guidance's unconditional half has no text: it is skipped, exactly (the tests
            # above compare the codes with generate's, which attends over every row)
            assert step.text_rows == len(PROMPTS)
            assert all(k.shape[0] == len(PROMPTS) for k in step.cross_keys)


def test_rows_whose_values_are_not_zero_still_go_through_cross_attention(loaded, monkeypatch):
    # a value projection with a bias gives the text-less rows non-zero values: then nothing
    # may be skipped
    from musicstems.backends.decoding import DecoderStep, encode_text

    layer = loaded.model.decoder.model.decoder.layers[-1]
    projection = layer.encoder_attn.v_proj
    monkeypatch.setattr(projection, "forward",
                        lambda x: torch.nn.functional.linear(x, projection.weight) + 0.5)
    inputs = loaded.processor(text=PROMPTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        states, mask = encode_text(loaded.model, inputs["input_ids"], inputs["attention_mask"],
                                   guided=True)
        step = DecoderStep(loaded.model, 2 * len(PROMPTS), 4)
        step.set_encoder(states, mask)
    assert step.text_rows == 2 * len(PROMPTS)


def test_without_guidance_too(loaded):
    from musicstems.backends.decoding import SamplingSettings

    inputs = loaded.processor(text=PROMPTS, padding=True, return_tensors="pt")
    expected = generate_codes(loaded.model, inputs, 5, guidance_scale=1.0, max_new_tokens=20)
    assert torch.equal(_loop_codes(loaded.model, inputs, 5, SamplingSettings(20, 1.0)),
                       expected)


def test_stereo_models_too(tmp_path):
    # facebook/musicgen-stereo-*: 8 codebooks, left and right interleaved, decoded one side at a
    # time; the loop keeps transformers' own delay pattern and decoding for them
    from musicstems.backends.musicgen import load_model
    from musicstems.testing import tiny_musicgen

    folder = tiny_musicgen(tmp_path / "stereo", stereo=True)
    stereo = load_model(str(folder), device="cpu", precision="fp32", quiet=True)
    inputs = stereo.processor(text=PROMPTS, padding=True, return_tensors="pt")
    from musicstems.backends.decoding import SamplingSettings

    expected = generate_codes(stereo.model, inputs, 2, guidance_scale=3.0, max_new_tokens=30)
    codes = _loop_codes(stereo.model, inputs, 2, SamplingSettings(30, 3.0))
    assert codes.shape == (1, len(PROMPTS), 8, 30 + 1 - 4)
    assert torch.equal(codes, expected)
    song = compose(STEMS, duration_s=0.6, seed=4, model=str(folder), align=False,
                   progress=False, precision="fp32")
    for audio in song.stems.values():
        assert audio.shape == (2, round(0.6 * 32000))
        assert not np.array_equal(audio[0], audio[1])  # two sides, each its own codes


def test_compose_falls_back_to_generate_with_the_same_audio(tiny_model, monkeypatch):
    from musicstems.backends import decoding

    def song():
        return compose(STEMS, duration_s=0.6, seed=4, model=tiny_model, align=False,
                       progress=False, precision="fp32")

    ours = song()
    assert ours.manifest["backend"]["sampler"] == "musicstems"
    assert ours.manifest["backend"]["sampler_reason"].startswith("tested with torch ")
    assert ours.manifest["backend"]["codec_decoder"] == "musicstems windowed"
    monkeypatch.setattr(decoding, "unsupported_reason", lambda model: "a test says so")
    theirs = song()
    assert theirs.manifest["backend"]["sampler"] == "transformers generate"
    assert theirs.manifest["backend"]["sampler_reason"] == "a test says so"
    assert theirs.manifest["backend"]["codec_decoder"] == "transformers (inside generate)"
    assert not np.array_equal(ours.stems["drums"], theirs.stems["drums"])  # two decodes ran
    for name in STEMS:
        # The same codes; the windowed decode is transformers' to fp32 rounding (test_codec.py)
        # and the loudness stage scales both alike.
        peak = np.abs(theirs.stems[name]).max()
        np.testing.assert_allclose(ours.stems[name], theirs.stems[name], rtol=0,
                                   atol=1e-5 * peak)


@pytest.mark.parametrize("torch_version, transformers_version", [
    ("2.13.0", "5.25.0"), ("2.13.1+cpu", "5.25.3"), ("2.13.0+cu128", "5.25.0.dev0"),
    ("2.13.0rc2", "5.25.1")])
def test_the_version_gate_admits_patch_releases_of_the_tested_table(torch_version,
                                                                    transformers_version):
    from musicstems.backends.versions import untested_reason

    assert untested_reason(torch_version, transformers_version) is None


@pytest.mark.parametrize("torch_version, transformers_version, untested", [
    ("2.14.0", "5.25.0", ["torch 2.14.0"]),
    ("2.12.1", "5.25.0", ["torch 2.12.1"]),
    ("2.130.0", "5.25.0", ["torch 2.130.0"]),  # not read as a prefix of 2.13
    ("3.13.0", "5.25.0", ["torch 3.13.0"]),
    ("2.13.0", "5.26.0", ["transformers 5.26.0"]),
    ("2.13.0", "4.56.2", ["transformers 4.56.2"]),
    ("2.1.0", "4.25.0", ["torch 2.1.0", "transformers 4.25.0"]),
    ("nightly", "5.25.0", ["torch nightly"]),
])
def test_the_version_gate_refuses_releases_outside_the_table(torch_version,
                                                             transformers_version, untested):
    from musicstems.backends.versions import untested_reason

    reason = untested_reason(torch_version, transformers_version)
    assert reason is not None
    for name in untested:
        assert f"{name} is untested" in reason
    assert reason.count("is untested") == len(untested)


def test_choose_sampler_reads_the_gate_and_the_model(loaded, monkeypatch):
    import torch as installed_torch

    from musicstems.backends import decoding, versions
    from musicstems.backends.musicgen import choose_sampler

    sampler, reason = choose_sampler(loaded.model)
    assert sampler == "musicstems"  # the control: the installed releases are in the table
    assert reason.startswith(f"tested with torch {installed_torch.__version__} and ")
    monkeypatch.setattr(versions, "installed_versions", lambda: ("2.13.0", "5.26.0.dev0"))
    assert choose_sampler(loaded.model) == (
        "transformers generate", "transformers 5.26.0.dev0 is untested (tested: 5.25)")
    monkeypatch.undo()
    monkeypatch.setattr(decoding, "unsupported_reason", lambda model: "a test says so")
    assert choose_sampler(loaded.model) == ("transformers generate", "a test says so")


def test_an_untested_release_runs_generate_end_to_end(tiny_model, monkeypatch):
    """With an untested torch the song's codes are generate's own, stem by stem, batch 1
    under each stem's seed: caught at the codec's door, which only generate's decode goes
    through (the loop's windowed decode does not call it), and compared with generate run
    directly."""
    import transformers

    from musicstems.backends import versions
    from musicstems.backends.decoding import SamplingSettings
    from musicstems.backends.musicgen import load_model
    from musicstems.backends.runs import tokenize
    from musicstems.stems import stem_seed

    loaded = load_model(tiny_model, device="cpu", precision="fp32", quiet=True)
    model = loaded.model
    caught = []
    decode = model.audio_encoder.decode

    def catch(codes, **kwargs):
        caught.append(codes.clone())
        return decode(codes, **kwargs)

    def song(seed):
        # the text alone, as the reference below (a primer through generate: test_primer.py)
        return compose(STEMS, duration_s=0.6, seed=seed, model=tiny_model, align=False,
                       progress=False, precision="fp32", device="cpu", primer=None)

    monkeypatch.setattr(model.audio_encoder, "decode", catch)
    song(4)
    assert caught == []  # the control: the tested releases run the loop, not generate
    monkeypatch.setattr(versions, "installed_versions",
                        lambda: ("2.99.0", transformers.__version__))
    untested = song(4)
    backend = untested.manifest["backend"]
    assert backend["sampler"] == "transformers generate"
    assert backend["sampler_reason"] == "torch 2.99.0 is untested (tested: 2.13)"
    assert backend["decoder_layers"] == "transformers"
    assert backend["groups"] == [["bass"], ["drums"]]  # one stem per generate call
    assert len(caught) == 2
    monkeypatch.undo()  # generate below is the reference, uncaught
    steps = backend["decoder_steps"]
    for name, codes in zip(["bass", "drums"], caught):
        inputs = tokenize(loaded, [untested.prompts[name]])
        expected = generate_codes(model, inputs, stem_seed(4, name), guidance_scale=3.0,
                                  max_new_tokens=steps)
        assert torch.equal(codes, expected)
        # the seed matters: a different one samples other codes
        assert not torch.equal(_loop_codes(model, inputs, 5, SamplingSettings(steps, 3.0)),
                               expected)


def test_the_decoder_step_refuses_to_run_past_its_cache(loaded):
    from musicstems.backends.decoding import DecoderStep, encode_text

    inputs = loaded.processor(text=PROMPTS[:1], padding=True, return_tensors="pt")
    with torch.inference_mode():
        states, mask = encode_text(loaded.model, inputs["input_ids"],
                                   inputs["attention_mask"], guided=False)
        step = DecoderStep(loaded.model, 1, 2)
        step.set_encoder(states, mask)
        codes = torch.zeros(1, 4, dtype=torch.long)
        step(codes)
        step(codes)
        with pytest.raises(RuntimeError, match="capacity"):
            step(codes)
