"""The windowed EnCodec decode (musicstems/backends/codec.py) against transformers' own.

In fp32 it must be transformers' decode to rounding, for every decoder layout it accepts (causal
or not, reflect or zero padding, conv shortcuts, dilated residual blocks), at every length, with
windows of any size: the context each window carries must cover the stack's receptive field.
Layouts it does not accept go through ``codec.decode`` and say why.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from musicstems.backends import codec as windowed  # noqa: E402


def _encodec(seed: int = 0, **overrides):
    """A random-weight 32 kHz EnCodec (musicgen's layout unless overridden) with random
    codebooks and biases, so every code and every bias reaches the output."""
    from transformers import EncodecConfig, EncodecModel

    settings = dict(sampling_rate=32000, audio_channels=1, hidden_size=32, num_filters=4,
                    upsampling_ratios=[8, 5, 4, 4], codebook_size=64, codebook_dim=32,
                    target_bandwidths=[2.2], num_lstm_layers=1, normalize=False,
                    use_causal_conv=False)
    settings.update(overrides)
    torch.manual_seed(seed)
    model = EncodecModel(EncodecConfig(**settings)).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.normal_(0.0, 0.3 if "bias" in name else 1.0)
        for layer in model.quantizer.layers:
            layer.codebook.embed.normal_(0.0, 1.0)
    return model


def _codes(model, batch: int, frames: int, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.config.codebook_size, (1, batch, 4, frames),
                         generator=generator)


def _theirs(model, codes):
    return model.decode(codes, [None] * codes.shape[1]).audio_values


def _assert_close(ours, theirs):
    assert ours.shape == theirs.shape
    scale = theirs.abs().max().item()
    assert scale > 0
    assert (ours - theirs).abs().max().item() <= 1e-5 * scale


@pytest.mark.parametrize("frames", [1, 2, 7, 50, 123])
def test_fp32_decode_is_transformers_decode_at_every_length(frames):
    model = _encodec()
    assert windowed.unsupported_reason(model) is None
    codes = _codes(model, 3, frames)
    with torch.inference_mode():
        ours, decoder = windowed.decode(model, codes)
        theirs = _theirs(model, codes)
    assert decoder == "musicstems windowed"  # not transformers' pass compared with itself
    assert ours.shape == (3, 1, frames * 640)  # exact to the sample
    _assert_close(ours, theirs)


@pytest.mark.parametrize("layout", [
    dict(use_causal_conv=True),
    dict(pad_mode="constant"),
    dict(use_conv_shortcut=True, num_residual_layers=2, dilation_growth_rate=2),
    dict(upsampling_ratios=[4, 4, 2], kernel_size=5, last_kernel_size=3,
         target_bandwidths=[40.0]),  # 1000 frames/s: 4 codebooks need 40 kbps
    dict(audio_channels=2),
])
def test_fp32_decode_matches_for_every_accepted_layout(layout):
    model = _encodec(**layout)
    assert windowed.unsupported_reason(model) is None
    codes = _codes(model, 2, 37)
    with torch.inference_mode():
        ours, decoder = windowed.decode(model, codes)
        assert decoder == "musicstems windowed"
        _assert_close(ours, _theirs(model, codes))


@pytest.mark.parametrize("layout", [
    dict(use_causal_conv=True),
    dict(use_conv_shortcut=True, num_residual_layers=3, dilation_growth_rate=2),
])
def test_the_smallest_windows_give_the_one_pass_result(layout, monkeypatch):
    """One frame of output per window: any receptive field the context missed would show."""
    model = _encodec(**layout)
    codes = _codes(model, 2, 40)
    with torch.inference_mode():
        whole = _theirs(model, codes)
        monkeypatch.setattr(windowed, "_WINDOW_ROWS", 1)
        ours, decoder = windowed.decode(model, codes)
        assert decoder == "musicstems windowed"
        _assert_close(ours, whole)


def test_same_codes_decode_to_identical_audio_in_bf16():
    model = _encodec().to(torch.bfloat16)
    codes = _codes(model, 2, 60)
    with torch.inference_mode():
        first, _ = windowed.decode(model, codes)
        second, _ = windowed.decode(model, codes)
        other, _ = windowed.decode(model, _codes(model, 2, 60, seed=2))
    assert first.dtype == torch.bfloat16
    assert torch.equal(first, second)
    assert not torch.equal(first, other)  # the control: other codes, other audio


def test_bf16_decode_keeps_more_than_30_db_of_the_fp32_decode():
    """30 dB is the codec threshold ``precision="auto"`` holds every precision to
    (docs/performance.md); transformers' own bf16 pass is the comparison."""
    model = _encodec()
    codes = _codes(model, 2, 60)
    with torch.inference_mode():
        reference = _theirs(model, codes)
        model.to(torch.bfloat16)
        ours = windowed.decode(model, codes)[0].float()
        theirs = _theirs(model, codes).float()

    def snr_db(audio):
        return 10 * math.log10(reference.pow(2).sum() / (audio - reference).pow(2).sum())

    assert snr_db(ours) >= 30.0
    assert snr_db(ours) >= snr_db(theirs) - 3.0


@pytest.mark.parametrize("layout, reason", [
    (dict(norm_type="time_group_norm"), "norm_type='time_group_norm'"),
    (dict(pad_mode="replicate"), "pad_mode='replicate'"),
    (dict(chunk_length_s=1.0, overlap=0.01), "chunked"),
])
def test_layouts_it_does_not_cover_go_through_transformers(layout, reason):
    model = _encodec(**layout)
    assert reason in windowed.unsupported_reason(model)


def test_decode_audio_uses_transformers_for_a_codec_it_does_not_cover(tiny_model, monkeypatch):
    from musicstems.backends.decoding import decode_audio
    from musicstems.backends.musicgen import load_model

    loaded = load_model(tiny_model, device="cpu", precision="fp32", quiet=True)
    codes = _codes(loaded.model.audio_encoder, 2, 30)
    with torch.inference_mode():
        theirs = _theirs(loaded.model.audio_encoder, codes)
        ours, decoder = decode_audio(loaded.model, codes)
        assert decoder == "musicstems windowed"
        _assert_close(ours, theirs)
        monkeypatch.setattr(windowed, "unsupported_reason", lambda codec: "a test says so")
        audio, decoder = decode_audio(loaded.model, codes)
    assert decoder == "transformers (a test says so)"
    assert torch.equal(audio, theirs)
