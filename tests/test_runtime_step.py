"""benchmarks/runtime_step.py: the decoder step the runtime benchmark converts computes what
musicstems' own step computes, so its fidelity and speed rows measure the runtimes, not a
different model. Needs only torch (the runtimes themselves are optional extras)."""

import torch

from benchmarks.runtime_step import ExportStep, cross_keys_values
from musicstems.backends.decoding import DecoderStep, encode_text
from musicstems.backends.musicgen import load_model


def _logits(tiny_model, steps: int, position_offset: int = 0):
    loaded = load_model(tiny_model, device="cpu", precision="fp32", quiet=True)
    model = loaded.model
    inputs = loaded.processor(text=["drums", "a longer bass prompt"], padding=True,
                              return_tensors="pt")
    config = model.config.decoder
    heads, dim = config.num_attention_heads, config.hidden_size // config.num_attention_heads
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        states, mask = encode_text(model, inputs["input_ids"], inputs["attention_mask"],
                                   guided=True)
        rows = states.shape[0]
        ours = DecoderStep(model, rows, steps)
        ours.set_encoder(states, mask)
        module = ExportStep(model, rows, rows // 2)
        cross = cross_keys_values(model, states, rows // 2)
        cross_mask = mask[:rows // 2].bool()[:, None, None, :]
        past = [torch.zeros(rows, heads, 0, dim) for _ in range(2 * config.num_hidden_layers)]
        pairs = []
        for t in range(steps):
            codes = torch.randint(0, config.vocab_size, (rows, config.num_codebooks),
                                  generator=generator)
            expected = ours(codes)
            got, *past = module(codes, torch.tensor([t + position_offset]), cross_mask,
                                *cross, *past)
            pairs.append((expected, got))
    return pairs


def test_export_step_matches_decoder_step(tiny_model):
    # same modules, same op order but for SDPA's kernel on a concatenated cache: float
    # rounding only, far below the int8 recipe's drift
    for expected, got in _logits(tiny_model, steps=6):
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_export_step_control_wrong_position_differs(tiny_model):
    # the comparison can fail: one position off changes the logits
    differences = [float((got - expected).abs().max())
                   for expected, got in _logits(tiny_model, steps=3, position_offset=1)]
    assert max(differences) > 1e-3
