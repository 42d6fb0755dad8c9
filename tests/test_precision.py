"""Precision and device: every precision runs, selection logic, memory handling.

Speed is never asserted here (benchmarks/ measures it); these tests check that every precision
produces finite audio of the right shape through the real ``from_pretrained`` path on the tiny
model, that ``auto`` picks what docs/performance.md says for every kind of machine (GPUs are
simulated by monkeypatching torch's availability checks: no GPU reaches this project's CI), and
that memory is handed back.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from musicstems import MusicStemsError, compose
from musicstems.backends import cpu, int8, onednn, pages
from musicstems.backends.device import resolve_device, resolve_precision

torch = pytest.importorskip("torch")

STEMS = {"drums": "punchy techno drums", "bass": "deep rolling acid bassline"}
DURATION_S = 0.5
SAMPLES = round(DURATION_S * 32000)


def _song(model, **kwargs):
    return compose(STEMS, duration_s=DURATION_S, seed=3, model=model, align=False,
                   progress=False, **kwargs)


def _assert_stems_audible(song):
    """Every stem finite, of the song's length, and not silence: the codes reached the codec."""
    for audio in song.stems.values():
        assert audio.shape == (1, SAMPLES)  # the tiny codec is mono, like musicgen-small
        assert np.isfinite(audio).all()
        assert np.abs(audio).max() > 0


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8", "auto"])
def test_every_cpu_precision_gives_finite_audio_of_the_right_shape(tiny_model, precision):
    song = _song(tiny_model, precision=precision, device="cpu")
    assert set(song.stems) == set(STEMS)
    assert {audio.dtype for audio in song.stems.values()} == {np.dtype(np.float32)}
    _assert_stems_audible(song)
    assert song.mix.shape[-1] == SAMPLES and np.isfinite(song.mix).all()
    backend = song.manifest["backend"]
    expected = resolve_precision(precision, "cpu")
    assert backend["precision"] == expected
    assert backend["decoder_steps"] == 25 + 3  # 0.5 s at 50 frames/s + the delay pattern
    # the recipe of the precision that ran, part by part (an empty or another recipe fails)
    recipe = backend["recipe"]
    if expected == "int8":
        assert recipe["decoder_linear"].startswith("int8 per-channel, dynamic activations")
        assert recipe["output_heads"].startswith("fp32")
        assert recipe["text_encoder"] == "fp32"
    elif expected == "bf16":
        assert recipe["all"] == "bf16"
        assert recipe["decoder_linear"] in ("packed for oneDNN", "torch default")
    else:
        assert recipe == {"all": expected}


def test_same_seed_same_audio_in_int8(tiny_model):
    # dynamic quantization is deterministic: the reproducibility promise holds in int8 too
    first, second = (_song(tiny_model, precision="int8") for _ in range(2))
    for name in STEMS:
        np.testing.assert_array_equal(first.stems[name], second.stems[name])


def test_int8_quantizes_the_decoder_layers_and_keeps_heads_and_encoder_float(tiny_model):
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    from musicstems.backends.musicgen import load_model

    loaded = load_model(tiny_model, device="cpu", precision="int8", quiet=True)
    model = loaded.model
    layer = model.decoder.model.decoder.layers[0]
    for linear in (layer.self_attn.out_proj, layer.encoder_attn.out_proj, layer.fc1, layer.fc2):
        assert isinstance(linear, DynamicLinear)
    if cpu.cpu_features()["vnni"]:  # 8-bit activations: q, k and v fused into one product
        assert type(layer.self_attn.q_proj) is int8.fused_slice_linear()
        assert "q|k|v as one product" in loaded.prepared.recipe["decoder_linear"]
    else:
        assert isinstance(layer.self_attn.q_proj, DynamicLinear)
    for head in model.decoder.lm_heads:  # fp32, packed for oneDNN where torch can
        weight = head.packed if hasattr(head, "packed") else head.weight
        assert weight.dtype == torch.float32
    assert next(model.text_encoder.parameters()).dtype == torch.float32
    features = cpu.cpu_features()
    codec_dtype = next(model.audio_encoder.parameters()).dtype
    assert codec_dtype == (torch.bfloat16 if features["bf16"] else torch.float32)
    fast = cpu.fast_bf16_attention(features)
    assert loaded.prepared.kv_dtype == (torch.bfloat16 if fast else None)


@pytest.mark.parametrize("amx_int8", [True, False])
def test_int8_packs_for_the_engine_its_cpu_gets_and_restores_torchs(tiny_model, monkeypatch,
                                                                    amx_int8):
    """oneDNN where the CPU has AMX-INT8 tiles, fbgemm elsewhere; torch's process-wide engine
    setting is the user's again once the model is loaded, and both give finite audio."""
    from musicstems import release_models

    engines = torch.backends.quantized.supported_engines
    if amx_int8 and "onednn" not in engines:
        pytest.skip("this torch build has no oneDNN quantized engine")
    features = {**cpu.cpu_features(), "amx_int8": amx_int8}
    monkeypatch.setattr(cpu, "cpu_features", lambda: features)
    expected = "onednn" if amx_int8 else "fbgemm"
    assert int8.int8_engine(features) == expected
    release_models()  # the cached model was packed under the real features
    before = torch.backends.quantized.engine
    try:
        song = _song(tiny_model, precision="int8", device="cpu")
    finally:
        release_models()
    assert torch.backends.quantized.engine == before
    assert song.manifest["backend"]["recipe"]["decoder_linear"].endswith(", " + expected)
    _assert_stems_audible(song)


@pytest.mark.parametrize("precision", ["int8", "bf16"])
@pytest.mark.parametrize("amx_bf16", [True, False])
def test_the_kv_cache_is_bf16_only_where_torchs_bf16_attention_is_fast(tiny_model, monkeypatch,
                                                                       precision, amx_bf16):
    """AMX-BF16: the cache in bf16 (half the bytes); without AMX torch's bf16
    attention is ~3x slower than fp32's (AMD EPYC, docs/performance.md), so it is fp32 --
    for the bf16 recipe too. Either way the song runs and the manifest says which."""
    from musicstems import release_models
    from musicstems.backends.decoding import DecoderStep

    features = {**cpu.cpu_features(), "amx_bf16": amx_bf16}
    if not features["bf16"] or (precision == "int8" and not cpu.int8_available()):
        pytest.skip("the CPU has no native bf16 (or no int8 kernels): neither recipe keeps a "
                    "bf16 cache here")
    monkeypatch.setattr(cpu, "cpu_features", lambda: features)
    release_models()  # cached models were prepared under the real features
    try:
        from musicstems.backends.musicgen import load_model

        loaded = load_model(tiny_model, device="cpu", precision=precision, quiet=True)
        kv = torch.bfloat16 if amx_bf16 else torch.float32
        activations = torch.float32 if precision == "int8" else torch.bfloat16
        assert (loaded.prepared.kv_dtype or activations) == kv
        step = DecoderStep(loaded.model, 2, 4, loaded.prepared)
        assert step.keys[0].dtype == kv and step.values[-1].dtype == kv
        song = _song(tiny_model, precision=precision, device="cpu")
    finally:
        release_models()
    assert song.manifest["backend"]["recipe"]["kv_cache"] == ("bf16" if amx_bf16 else "fp32")
    _assert_stems_audible(song)


def test_onednn_int8_only_where_its_second_copy_is_small_against_memory(monkeypatch):
    if "onednn" not in torch.backends.quantized.supported_engines:
        pytest.skip("this torch build has no oneDNN quantized engine")
    amx = {"bf16": True, "vnni": True, "amx_int8": True}
    gib = 2 ** 30
    monkeypatch.setattr(cpu, "physical_memory_bytes", lambda: 8 * gib)
    assert int8.int8_engine(amx, int(0.4 * gib)) == "onednn"  # musicgen-small on 8 GB
    assert int8.int8_engine(amx, int(1.6 * gib)) == "fbgemm"  # musicgen-medium on 8 GB
    assert int8.int8_engine({**amx, "amx_int8": False}, 1) == "fbgemm"
    monkeypatch.setattr(cpu, "physical_memory_bytes", lambda: None)
    assert int8.int8_engine(amx, 1) == "fbgemm"  # memory unknown: no second copy
    monkeypatch.setattr(cpu, "physical_memory_bytes", lambda: 16 * gib)
    assert int8.int8_engine(amx, int(1.6 * gib)) == "onednn"


def test_an_int8_layer_computes_the_float_product_to_int8_rounding():
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    torch.manual_seed(0)
    block = torch.nn.Sequential(torch.nn.Linear(512, 1024, bias=False))
    x = torch.randn(8, 1, 512)
    with torch.inference_mode():
        expected = block(x)
        with cpu.quiet_ao_deprecation():
            quantized = quantize_dynamic(block, {torch.nn.Linear: per_channel_dynamic_qconfig},
                                         dtype=torch.qint8,
                                         mapping={torch.nn.Linear: int8.full_range_linear()})
        error = (quantized(x) - expected).norm() / expected.norm()
    assert 0 < float(error) < 0.015  # 8-bit activations: ~0.009 on random data


@pytest.mark.parametrize("engine", ["fbgemm", "onednn"])
@pytest.mark.parametrize("bias", [False, True])
def test_fused_int8_linears_give_each_products_numbers_exactly(engine, bias):
    """The query, key and value weights packed as one product (``fuse_int8_linears``) give
    the three products' outputs bit for bit, in order, on either engine."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    if engine not in torch.backends.quantized.supported_engines:
        pytest.skip(f"this torch build has no {engine} quantized engine")
    torch.manual_seed(0)
    block = torch.nn.Sequential(*(torch.nn.Linear(256, width, bias=bias)
                                  for width in (256, 128, 256)))
    with torch.inference_mode(), cpu.quiet_ao_deprecation(), int8.packing_engine(engine):
        quantize_dynamic(block, {torch.nn.Linear: per_channel_dynamic_qconfig},
                         dtype=torch.qint8, mapping={torch.nn.Linear: int8.full_range_linear()},
                         inplace=True)
        fused = int8.fuse_int8_linears(list(block))
    x = torch.randn(8, 1, 256) * 3
    with torch.inference_mode():
        expected = torch.cat([linear(x) for linear in block], dim=-1)
        out = torch.ops.quantized.linear_dynamic(x, fused, False)
    assert out.shape == (8, 1, 640)
    assert torch.equal(out, expected)


def test_int8_query_key_value_give_each_projections_own_numbers(tiny_model):
    """The loaded int8 model's query, key and value modules -- column slices of one fused
    product, with no weights of their own -- give, bit for bit, what each projection gives
    quantized on its own from the fp32 checkpoint, with the same engine."""
    import copy

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    from musicstems.backends.musicgen import load_model

    if not cpu.cpu_features()["vnni"]:
        pytest.skip("without VNNI int8 keeps torch's 7-bit activations and fuses nothing")
    loaded = load_model(tiny_model, device="cpu", precision="int8", quiet=True)
    engine = loaded.prepared.recipe["decoder_linear"].rsplit(", ", 1)[-1]
    fp32 = load_model(tiny_model, device="cpu", precision="fp32", quiet=True).model
    for index in (0, -1):
        attn = loaded.model.decoder.model.decoder.layers[index].self_attn
        reference = fp32.decoder.model.decoder.layers[index].self_attn
        assert not list(attn.q_proj.parameters()) and not list(attn.q_proj.buffers())
        x = torch.randn(8, 1, reference.q_proj.in_features) * 2
        for name in ("q_proj", "k_proj", "v_proj"):
            alone = torch.nn.Sequential(copy.deepcopy(getattr(reference, name)))
            with cpu.quiet_ao_deprecation(), int8.packing_engine(engine):
                quantize_dynamic(alone, {torch.nn.Linear: per_channel_dynamic_qconfig},
                                 dtype=torch.qint8,
                                 mapping={torch.nn.Linear: int8.full_range_linear()},
                                 inplace=True)
            with torch.inference_mode():
                assert torch.equal(getattr(attn, name)(x), alone(x)), name


def test_bf16_runs_the_whole_model_in_bf16(tiny_model):
    from musicstems.backends.musicgen import load_model

    model = load_model(tiny_model, device="cpu", precision="bf16", quiet=True).model
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    packed = [m for m in model.decoder.modules() if hasattr(m, "packed")]
    if onednn.onednn_packing_works(torch.bfloat16):
        # every decoder Linear and output head: none is left to re-lay out per call
        assert not [m for m in model.decoder.modules() if type(m) is torch.nn.Linear]
        assert packed and {m.packed.dtype for m in packed} == {torch.bfloat16}
    else:
        assert not packed


def test_packing_for_onednn_keeps_bf16_results_bit_identical(tiny_model, monkeypatch):
    from musicstems.backends.musicgen import release_models

    if not onednn.onednn_packing_works(torch.bfloat16):
        pytest.skip("this torch/CPU cannot pack bf16 weights for oneDNN: nothing is packed")
    release_models()
    packed = _song(tiny_model, precision="bf16", device="cpu")
    assert packed.manifest["backend"]["recipe"]["decoder_linear"] == "packed for oneDNN"
    release_models()
    monkeypatch.setattr(onednn, "pack_linears_onednn", lambda module: 0)
    plain = _song(tiny_model, precision="bf16", device="cpu")
    release_models()
    assert plain.manifest["backend"]["recipe"]["decoder_linear"] == "torch default"
    for name in STEMS:
        np.testing.assert_array_equal(packed.stems[name], plain.stems[name])
    assert not np.array_equal(packed.stems["drums"], packed.stems["bass"])


# bias-free bf16 (MusicGen's layers): the very kernel F.linear calls, bit for bit; with a bias
# F.linear sometimes adds it apart, so the sums round differently (one bf16 step)
@pytest.mark.parametrize("dtype, bias, tolerance", [("bfloat16", False, 0.0),
                                                    ("bfloat16", True, 2 ** -7),
                                                    ("float32", True, 1e-5)])
def test_a_packed_linear_computes_the_linear_product(dtype, bias, tolerance):
    if not onednn.onednn_packing_works(getattr(torch, dtype)):
        pytest.skip(f"this torch/CPU cannot pack {dtype} weights for oneDNN")
    torch.manual_seed(1)
    linear = torch.nn.Linear(256, 512, bias=bias).to(getattr(torch, dtype))
    x = torch.randn(8, 1, 256, dtype=getattr(torch, dtype))
    with torch.inference_mode():
        expected = linear(x).float()
        packed = onednn.onednn_linear()(linear, 8)
        for rows in (x, x[:2], x.expand(8, 26, 256)):  # other row counts than packed for
            error = (packed(rows).float() - linear(rows).float()).abs().max()
            assert float(error) <= tolerance * float(expected.abs().max())
    assert packed.packed.shape == (512, 256)


def test_a_packed_model_refuses_to_be_saved_rather_than_lose_weights(tiny_model, tmp_path):
    from musicstems.backends.musicgen import load_model

    if not onednn.onednn_packing_works(torch.float32):
        pytest.skip("this torch/CPU cannot pack weights for oneDNN: nothing is packed")
    model = load_model(tiny_model, device="cpu", precision="int8", quiet=True).model
    # the first module that cannot be saved is named: a fused int8 projection (CPUs with
    # VNNI) or else a packed output head
    first = r"layers\.0\.self_attn\.[qkv]_proj" if cpu.cpu_features()["vnni"] else r"lm_heads\.0"
    with pytest.raises(MusicStemsError, match=first + r".*precision='fp32'"):
        model.decoder.state_dict()
    with pytest.raises(MusicStemsError, match=r"lm_heads\.0.*precision='fp32'"):
        model.decoder.lm_heads.state_dict(prefix="lm_heads.")
    with pytest.raises(MusicStemsError, match="cannot be saved"):
        model.save_pretrained(tmp_path / "copy")
    assert not (tmp_path / "copy" / "model.safetensors").exists()


# --- selection logic -------------------------------------------------------------------------

def _gpus(monkeypatch, *, cuda: bool, mps: bool):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize("cuda, mps, expected", [
    (True, False, "cuda"), (True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_device_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    _gpus(monkeypatch, cuda=cuda, mps=mps)
    assert resolve_device("auto") == expected


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_asking_for_a_missing_gpu_names_the_device_and_the_fix(monkeypatch, device):
    _gpus(monkeypatch, cuda=False, mps=False)
    with pytest.raises(MusicStemsError, match=f"device='{device}'.*'auto'"):
        resolve_device(device)


@pytest.mark.parametrize("device, flags, expected", [
    ("cuda", {"bf16_supported": True}, "bf16"),     # Ampere and later
    ("cuda", {"bf16_supported": False}, "fp16"),    # older GPUs
    ("mps", {}, "fp16"),
    ("cpu", {"int8_supported": True}, "int8"),      # x86 with VNNI: 8-bit int8 recipe
    ("cpu", {"int8_supported": False, "bf16_supported": True}, "bf16"),
    ("cpu", {"int8_supported": False, "bf16_supported": False}, "fp32"),
])
def test_auto_precision_per_machine(device, flags, expected):
    assert resolve_precision("auto", device, **flags) == expected


def test_auto_precision_on_a_cuda_gpu_asks_torch_about_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", "cuda") == "fp16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", "cuda") == "bf16"


def test_auto_precision_on_this_cpu_follows_its_features(monkeypatch):
    monkeypatch.setattr(cpu, "cpu_features", lambda: {"bf16": True, "vnni": False})
    assert resolve_precision("auto", "cpu") == "bf16"  # no VNNI: int8 would need 7 bits
    monkeypatch.setattr(cpu, "cpu_features", lambda: {"bf16": False, "vnni": True})
    expected = "int8" if cpu.int8_available() else "fp32"
    assert resolve_precision("auto", "cpu") == expected


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_int8_is_cpu_only(device):
    with pytest.raises(MusicStemsError, match=f"precision='int8'.*device='{device}'"):
        resolve_precision("int8", device)


def test_int8_without_int8_kernels_says_what_to_use(monkeypatch):
    monkeypatch.setattr(cpu, "int8_available", lambda: False)
    with pytest.raises(MusicStemsError, match="precision='int8'.*'auto'"):
        resolve_precision("int8", "cpu")


def test_fp16_needs_a_gpu_and_unknown_precisions_are_refused():
    with pytest.raises(MusicStemsError, match="precision='fp16' needs a GPU"):
        resolve_precision("fp16", "cpu")
    assert resolve_precision("fp16", "cuda") == "fp16"
    assert resolve_precision("bf16", "mps") == "bf16"
    with pytest.raises(MusicStemsError, match="precision='fp8'"):
        resolve_precision("fp8", "cpu")


# --- threads, cache, memory ------------------------------------------------------------------

def test_torch_thread_setting_is_respected_and_recorded(tiny_model):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        song = _song(tiny_model, precision="fp32")
        assert torch.get_num_threads() == 1  # musicstems never changes it
    finally:
        torch.set_num_threads(threads)
    assert song.manifest["backend"]["threads"] == 1


def test_release_models_frees_the_cached_models(tiny_model):
    from musicstems import release_models
    from musicstems.backends.musicgen import load_model

    release_models()
    loaded = load_model(tiny_model, device="cpu", precision="fp32", quiet=True)
    assert load_model(tiny_model, device="cpu", precision="fp32", quiet=True) is loaded
    model = weakref.ref(loaded.model)
    del loaded
    assert release_models() == 1
    gc.collect()
    assert model() is None  # nothing else holds the weights
    assert release_models() == 0


def test_releasing_checkpoint_pages_keeps_values_and_skips_other_memory(tiny_model):
    # Pages of a memory-mapped checkpoint are dropped; reading the tensor again reads the
    # file again, so the values cannot change. Memory that is not a mapped checkpoint (a
    # fresh tensor) is never touched.
    from transformers import MusicgenForConditionalGeneration

    model = MusicgenForConditionalGeneration.from_pretrained(tiny_model)
    weight = max((p for p in model.parameters()), key=lambda p: p.numel()).detach()
    before = weight.clone()
    released = pages.release_checkpoint_pages([weight])
    assert torch.equal(weight, before)
    if released == 0:
        pytest.skip("transformers did not memory-map this checkpoint here")
    fresh = torch.ones(1 << 16)
    assert pages.release_checkpoint_pages([fresh]) == 0 and bool((fresh == 1).all())
