"""Tiny random-weight MusicGen models, for tests and for trying musicstems without a download.

``tiny_musicgen(path)`` writes a complete model folder (text encoder, decoder, 32 kHz EnCodec-style
codec, tokenizer, feature extractor, generation config) with ``save_pretrained``, so that
``compose(..., model=path)`` goes through exactly the ``from_pretrained`` code path a real hub
model does. The audio it makes is noise-like: the weights are random.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["tiny_musicgen", "musicgen_config", "melody_config"]

# A small vocabulary for the test tokenizer: music words, so prompts tokenize into varied ids.
_CORPUS = """punchy four on the floor techno drums kick snare hihat clap percussion
deep rolling acid bassline sub bass warm evolving analog pads strings piano lead synth guitar
brass organ bells choir ambient drone dark berlin techno house jazz funk rock pop lofi hip hop
trap dubstep cinematic orchestral epic soft loud bright mellow fast slow groovy minor major key
bpm in a b c d e f g sharp flat with and of for 120 128 90 140 100 melody chords arpeggio""".split()


def _tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers, decoders
    from transformers import T5TokenizerFast

    # transformers 5 rebuilds T5 tokenizers as Unigram, so the test tokenizer must be Unigram too.
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=160, special_tokens=["<pad>", "</s>", "<unk>"],
                                      unk_token="<unk>")
    sentences = [" ".join(_CORPUS[i:i + 8]) for i in range(0, len(_CORPUS), 3)]
    tok.train_from_iterator(sentences * 4, trainer=trainer)
    return T5TokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                           unk_token="<unk>", extra_ids=0)


def musicgen_config(*, size: str = "tiny", vocab_size: int = 160, stereo: bool = False):
    """A MusicGen config.

    Parameters
    ----------
    size : {"tiny", "small", "medium"}
        ``"tiny"`` for tests. ``"small"`` and ``"medium"`` are the published architectures of
        facebook/musicgen-small and facebook/musicgen-medium, field for field: a T5-base text
        encoder (12 layers, d_model 768, d_ff 3072, 12 heads, vocabulary 32128), a decoder of
        4 codebooks of 2048 codes (small: 24 layers, hidden 1024, 16 heads, ffn 4096; medium:
        48 layers, hidden 1536, 24 heads, ffn 6144) and the 32 kHz EnCodec (64 filters,
        ratios 8-5-4-4 = 50 frames/s, 2-layer LSTM, no conv shortcut, reflect padding). The
        benchmarks build them with random weights: speed does not depend on weight values.
    vocab_size : int
        Text vocabulary of the tiny model.
    stereo : bool
        The layout of facebook/musicgen-stereo-*: 8 codebooks, left and right interleaved, each
        side decoded by the same mono EnCodec.
    """
    from transformers import (EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, T5Config)

    from ..backends.notices import drop_false_musicgen_notices

    drop_false_musicgen_notices()

    if size == "tiny":
        text = T5Config(vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                        num_heads=4, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
        codec = EncodecConfig(
            sampling_rate=32000, audio_channels=1, hidden_size=32, num_filters=4,
            upsampling_ratios=[8, 5, 4, 4], codebook_size=64, codebook_dim=32,
            # 1.2 kbps first: encode's default, 4 codebooks of 6 bits at 50 frames/s -- the
            # decoder's 4, as 2.2 kbps is for the real 2048-code codec -- so an audio prompt
            # encodes to codes the decoder reads; the last (2.2) sets the quantizer's 7 layers,
            # as before, so the weights and every decode are unchanged
            target_bandwidths=[1.2, 2.2], num_lstm_layers=1, normalize=False, use_causal_conv=False,
        )
        decoder = MusicgenDecoderConfig(vocab_size=64, hidden_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, ffn_dim=128, num_codebooks=4,
                                        max_position_embeddings=2048, pad_token_id=64,
                                        bos_token_id=64)
    elif size in ("small", "medium"):
        text = T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12,
                        num_heads=12, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
        codec = EncodecConfig(
            sampling_rate=32000, audio_channels=1, hidden_size=128, num_filters=64,
            upsampling_ratios=[8, 5, 4, 4], codebook_size=2048, codebook_dim=128,
            target_bandwidths=[2.2], num_lstm_layers=2, normalize=False, use_causal_conv=False,
            num_residual_layers=1, compress=2, residual_kernel_size=3, kernel_size=7,
            last_kernel_size=7, dilation_growth_rate=2, trim_right_ratio=1.0, pad_mode="reflect",
            use_conv_shortcut=False, norm_type="weight_norm", chunk_length_s=None, overlap=None,
        )
        hidden, layers, heads = (1024, 24, 16) if size == "small" else (1536, 48, 24)
        decoder = MusicgenDecoderConfig(vocab_size=2048, hidden_size=hidden,
                                        num_hidden_layers=layers, num_attention_heads=heads,
                                        ffn_dim=4 * hidden, num_codebooks=4,
                                        max_position_embeddings=2048, pad_token_id=2048,
                                        bos_token_id=2048)
    else:
        raise ValueError(f"size={size!r}: use 'tiny', 'small' or 'medium'")
    if stereo:
        decoder.audio_channels, decoder.num_codebooks = 2, 8
    return MusicgenConfig(text_encoder=text.to_dict(), audio_encoder=codec.to_dict(),
                          decoder=decoder.to_dict())


def melody_config(*, vocab_size: int = 160):
    """The tiny MusicGen-Melody config: the tiny MusicGen's text encoder, codec and decoder
    sizes (``MusicgenMelodyDecoderConfig``: self-attention only, the conditioning -- chroma
    frames, then text -- prepended to the decoder's input), and facebook/musicgen-melody's
    chroma layout: 12 pitch classes, 235 frames (30 s at 4096-sample hops of 32 kHz)."""
    from transformers import MusicgenMelodyConfig, MusicgenMelodyDecoderConfig

    plain = musicgen_config(size="tiny", vocab_size=vocab_size)
    decoder = MusicgenMelodyDecoderConfig(vocab_size=64, hidden_size=64, num_hidden_layers=2,
                                          num_attention_heads=4, ffn_dim=128, num_codebooks=4,
                                          max_position_embeddings=2048, pad_token_id=64,
                                          bos_token_id=64)
    return MusicgenMelodyConfig(text_encoder=plain.text_encoder.to_dict(),
                                audio_encoder=plain.audio_encoder.to_dict(),
                                decoder=decoder.to_dict(), num_chroma=12, chroma_length=235)


# facebook/musicgen-melody's preprocessor_config.json, written beside a tiny melody model so its
# folder reads as the hub's; its MusicgenMelodyFeatureExtractor needs torchaudio, so musicstems
# builds the chroma with librosa (musicstems.conditioning.chroma) from these same numbers
MELODY_FEATURES = {"feature_extractor_type": "MusicgenMelodyFeatureExtractor",
                   "processor_class": "MusicgenMelodyProcessor", "feature_size": 12,
                   "num_chroma": 12, "sampling_rate": 32000, "hop_length": 4096,
                   "n_fft": 16384, "chunk_length": 30, "padding_side": "left",
                   "padding_value": 0.0, "return_attention_mask": False,
                   "stem_indices": [3, 2]}


def _responsive_decoder(model) -> None:
    """Scale a random decoder so its codes follow its inputs. At the initial std 0.02 a code's
    embedding is 6 % of the position's and the logits spread 0.16 around uniform: what is
    sampled is then decided by the sampler's random numbers, and a different primer changes
    1 code in 300 (a chroma, through a 0.02 projection, about none) -- a test of conditioning
    could hardly fail. Embeddings and the chroma projection at std 0.5, heads at 0.3 (logits
    spread about 2, as a trained model's), self-attention's output at 0.2."""
    decoder = model.decoder.model.decoder
    for embedding in decoder.embed_tokens:
        embedding.weight.mul_(25.0)
    for head in model.decoder.lm_heads:
        head.weight.mul_(15.0)
    projection = getattr(model, "audio_enc_to_dec_proj", None)
    if projection is not None:
        projection.weight.mul_(25.0)
    for layer in decoder.layers:  # what attention brings (a primer's past, a chroma) counts
        layer.self_attn.out_proj.weight.mul_(10.0)


def _spread_encoder(codec) -> None:
    """Make a random EnCodec's encoder tell audio apart, for audio prompts: its biases zeroed
    and its last convolution scaled so its output has unit spread, like the unit-normal
    codebooks. Otherwise its small outputs, a constant bias plus 1 % of signal, sit nearest the
    same code whatever the audio, and a test of two primers could not fail. Touches only the
    encoder, and draws from its own generator: decoding, and so every song without a primer,
    is unchanged."""
    import torch

    for name, parameter in codec.encoder.named_parameters():
        if name.endswith("bias"):
            parameter.zero_()
    calibration = torch.randn(2, 1, 32000, generator=torch.Generator().manual_seed(0))
    spread = float(codec.encoder(0.3 * calibration).std())
    last = codec.encoder.layers[-1].conv
    gain = getattr(getattr(last, "parametrizations", None), "weight", None)
    if gain is not None:
        gain.original0.mul_(1.0 / spread)  # the weight norm's magnitude
    else:
        last.weight.mul_(1.0 / spread)


def build_random_musicgen(*, size: str = "tiny", seed: int = 0, stereo: bool = False,
                          melody: bool = False, responsive: bool = False):
    """A randomly initialised ``MusicgenForConditionalGeneration`` (``melody``: a tiny
    ``MusicgenMelodyForConditionalGeneration``) and its processor (for a melody model its
    tokenizer: the melody processor needs torchaudio)."""
    import torch
    from transformers import (EncodecFeatureExtractor, GenerationConfig,
                              MusicgenForConditionalGeneration,
                              MusicgenMelodyForConditionalGeneration, MusicgenProcessor)

    if melody and (size != "tiny" or stereo):
        raise ValueError("melody=True builds the tiny mono melody model only")
    tokenizer = _tokenizer()
    vocab = tokenizer.vocab_size if size == "tiny" else 32128
    vocab = max(vocab, len(tokenizer))
    torch.manual_seed(seed)
    if melody:
        config = melody_config(vocab_size=vocab)
        model = MusicgenMelodyForConditionalGeneration(config).eval()
    else:
        config = musicgen_config(size=size, vocab_size=vocab, stereo=stereo)
        model = MusicgenForConditionalGeneration(config).eval()
    with torch.no_grad():
        # A fresh EnCodec has all-zero codebooks, so every code would decode to the same audio
        # and tests of seeds and prompts could not fail: give each code its own embedding.
        for layer in model.audio_encoder.quantizer.layers:
            layer.codebook.embed.normal_(0.0, 1.0)
            layer.codebook.embed_avg.copy_(layer.codebook.embed)
            layer.codebook.cluster_size.fill_(1.0)
            layer.codebook.inited.fill_(True)
        # Random decoder biases add one fixed waveform to every output and drown the codes
        # (stems from different prompts then differ by ~4%): without them the codes decide.
        for name, parameter in model.audio_encoder.decoder.named_parameters():
            if name.endswith("bias"):
                parameter.zero_()
        _spread_encoder(model.audio_encoder)
        if responsive:
            _responsive_decoder(model)
    model.generation_config = GenerationConfig(
        do_sample=True, guidance_scale=3.0, top_k=250, max_length=1500,
        decoder_start_token_id=config.decoder.bos_token_id,
        pad_token_id=config.decoder.pad_token_id, bos_token_id=config.decoder.bos_token_id,
    )
    if melody:
        return model, tokenizer
    extractor = EncodecFeatureExtractor(feature_size=1, sampling_rate=32000, padding_value=0.0)
    processor = MusicgenProcessor(feature_extractor=extractor, tokenizer=tokenizer)
    return model, processor


def tiny_musicgen(path: str | Path, *, seed: int = 0, stereo: bool = False,
                  melody: bool = False, responsive: bool = False) -> Path:
    """Build a tiny random-weight MusicGen and save it, with its processor, to ``path``.

    Parameters
    ----------
    path : str or Path
        Folder to write (created if missing).
    seed : int
        Seed of the random weights: the same seed writes the same model.
    stereo : bool
        The stereo layout (8 interleaved codebooks, as facebook/musicgen-stereo-*).
    melody : bool
        A MusicGen-Melody (``model_type`` "musicgen_melody", as facebook/musicgen-melody):
        conditioned on a chroma besides the text. Written with its tokenizer and the hub's
        ``preprocessor_config.json``.
    responsive : bool
        Scale the decoder so its codes follow its inputs (primer, chroma) more than the
        sampler's random numbers; tests of conditioning use it. Off, the weights -- and every
        output -- are the tiny model's as before.

    Returns
    -------
    Path
        The folder, ready for ``compose(..., model=path)``.

    Examples
    --------
    >>> from musicstems.testing import tiny_musicgen
    >>> folder = tiny_musicgen("/tmp/tiny-musicgen")  # doctest: +SKIP
    """
    import json

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model, processor = build_random_musicgen(size="tiny", seed=seed, stereo=stereo,
                                             melody=melody, responsive=responsive)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    if melody:
        with open(path / "preprocessor_config.json", "w", encoding="utf-8") as file:
            json.dump(MELODY_FEATURES, file, indent=2)
    return path
