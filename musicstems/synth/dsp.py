"""Signal building blocks for the sketch synthesizer, vectorized with numpy and scipy.

Everything works on float64 numpy arrays at a given ``sample_rate`` in Hz and is deterministic:
noise comes from generators seeded by the caller. Oscillators are band-limited with polyBLEP
(Välimäki & Huovilainen, "Antialiasing oscillators in subtractive synthesis", 2007): the naive
saw's jump is smoothed by a two-sample polynomial residual, which removes most of the aliasing a
naive saw folds back at 32 kHz. Filters are the RBJ "Audio EQ Cookbook" biquads run with
``scipy.signal.sosfilt``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import signal

__all__ = ["phase", "saw", "square", "sine", "adsr", "biquad", "filt", "sweep_filter",
           "karplus_strong", "reverb", "tempo_delay", "pan_stereo", "cents"]


def cents(value: float) -> float:
    """Frequency ratio of ``value`` cents."""
    return 2.0 ** (value / 1200.0)


def phase(freq_hz: "float | np.ndarray", num_samples: int, sample_rate: int,
          start: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Phase in [0, 1) and phase increment per sample of an oscillator at ``freq_hz`` (a number
    or one value per sample, for vibrato and glides)."""
    if np.ndim(freq_hz) == 0:
        step = np.full(num_samples, float(freq_hz) / sample_rate)
        ph = (start + np.arange(num_samples) * step[0]) % 1.0
    else:
        step = np.asarray(freq_hz, dtype=np.float64)[:num_samples] / sample_rate
        ph = (start + np.concatenate(([0.0], np.cumsum(step[:-1])))) % 1.0
    return ph, step


def _blep(t: np.ndarray, dt: np.ndarray) -> np.ndarray:
    out = np.zeros_like(t)
    low = t < dt
    x = t[low] / dt[low]
    out[low] = x + x - x * x - 1.0
    high = t > 1.0 - dt
    x = (t[high] - 1.0) / dt[high]
    out[high] = x * x + x + x + 1.0
    return out


def saw(freq_hz, num_samples: int, sample_rate: int, start: float = 0.0) -> np.ndarray:
    """Band-limited sawtooth in [-1, 1]."""
    ph, dt = phase(freq_hz, num_samples, sample_rate, start)
    return 2.0 * ph - 1.0 - _blep(ph, dt)


def square(freq_hz, num_samples: int, sample_rate: int, start: float = 0.0,
           width: float = 0.5) -> np.ndarray:
    """Band-limited pulse of duty cycle ``width``: the difference of two saws."""
    ph, dt = phase(freq_hz, num_samples, sample_rate, start)
    shifted = (ph + width) % 1.0
    # the two saws' DC cancels for any width, so the pulse has none either
    return (2.0 * ph - 1.0 - _blep(ph, dt)) - (2.0 * shifted - 1.0 - _blep(shifted, dt))


def sine(freq_hz, num_samples: int, sample_rate: int, start: float = 0.0) -> np.ndarray:
    ph, _ = phase(freq_hz, num_samples, sample_rate, start)
    return np.sin(2.0 * np.pi * ph)


def adsr(num_samples: int, sample_rate: int, *, attack_s: float, decay_s: float,
         sustain: float, release_s: float, gate_s: float) -> np.ndarray:
    """Linear attack, exponential-looking decay to ``sustain``, release after ``gate_s``."""
    t = np.arange(num_samples) / sample_rate
    attack_s = max(attack_s, 1.0 / sample_rate)
    env = np.where(t < attack_s, t / attack_s,
                   sustain + (1.0 - sustain) * np.exp(-(t - attack_s) / max(decay_s, 1e-4)))
    at_gate = np.interp(gate_s, t, env) if gate_s < t[-1] else env[-1]
    after = t >= gate_s
    env[after] = at_gate * np.exp(-(t[after] - gate_s) / max(release_s / 4.6, 1e-4))
    return env


@lru_cache(maxsize=4096)
def biquad(kind: str, freq_hz: float, q: float, sample_rate: int) -> np.ndarray:
    """One second-order section (RBJ cookbook) as an ``sos`` row: ``lowpass``, ``highpass``,
    ``bandpass`` (0 dB peak)."""
    freq_hz = float(np.clip(freq_hz, 10.0, 0.45 * sample_rate))
    w0 = 2.0 * np.pi * freq_hz / sample_rate
    alpha = np.sin(w0) / (2.0 * q)
    cos = np.cos(w0)
    if kind == "lowpass":
        b = [(1 - cos) / 2, 1 - cos, (1 - cos) / 2]
    elif kind == "highpass":
        b = [(1 + cos) / 2, -(1 + cos), (1 + cos) / 2]
    elif kind == "bandpass":
        b = [alpha, 0.0, -alpha]
    else:  # pragma: no cover - internal
        raise ValueError(kind)
    a = [1 + alpha, -2 * cos, 1 - alpha]
    return np.array([[b[0] / a[0], b[1] / a[0], b[2] / a[0], 1.0, a[1] / a[0], a[2] / a[0]]])


def filt(x: np.ndarray, kind: str, freq_hz: float, sample_rate: int, *, q: float = 0.7071,
         order: int = 1) -> np.ndarray:
    """Filter ``x`` (last axis) with ``order`` cascaded biquads of one kind."""
    sos = np.repeat(biquad(kind, float(freq_hz), float(q), int(sample_rate)), order, axis=0)
    return signal.sosfilt(sos, x, axis=-1)


def sweep_filter(x: np.ndarray, cutoff_hz: np.ndarray, sample_rate: int, *, q: float = 0.7071,
                 block: int = 64) -> np.ndarray:
    """A resonant low-pass whose cutoff follows ``cutoff_hz`` (one value per sample), 4 poles:
    a resonant biquad then a plain one. Coefficients change every ``block`` samples and the
    filter state carries across, which is smooth for envelopes slower than ~2 ms."""
    out = np.empty_like(x)
    zi = np.zeros((2, 2))
    # quantize the cutoff to 1/8-semitone steps so the cached coefficients are reused
    for start in range(0, len(x), block):
        stop = min(start + block, len(x))
        f = float(cutoff_hz[start])
        f = 2.0 ** (round(np.log2(max(f, 20.0)) * 96) / 96)
        sos = np.vstack((biquad("lowpass", f, q, sample_rate),
                         biquad("lowpass", f, 0.7071, sample_rate)))
        out[start:stop], zi = signal.sosfilt(sos, x[start:stop], zi=zi)
    return out


def karplus_strong(freq_hz: float, num_samples: int, sample_rate: int, *, t60_s: float,
                   brightness: float, rng: np.random.Generator, pick: float = 0.13
                   ) -> np.ndarray:
    """A plucked string (Karplus-Strong), tuned exactly with a fractional delay.

    The loop is ``y[n] = x[n] + g * (k * y)[n - M]`` with ``k`` a 4-tap low-pass whose
    delay is 1 + frac samples, so the period is ``M + 1 + frac = sample_rate / freq_hz``. Every
    tap reaches at least ``M`` samples back, so the recursion runs one ``M``-sample block at a
    time in numpy. ``g`` gives the wanted 60 dB decay time ``t60_s``.
    """
    period = sample_rate / freq_hz
    m = int(np.floor(period)) - 1
    frac = period - (m + 1)
    base = np.array([0.25, 0.5, 0.25, 0.0])
    kernel = (1.0 - frac) * base + frac * np.roll(base, 1)
    gain = 10.0 ** (-3.0 / (freq_hz * t60_s))
    burst = rng.uniform(-1.0, 1.0, int(np.ceil(period)))
    # brightness in [0, 1]: a one-pole low-pass on the burst, the pluck's hardness
    coef = 0.15 + 0.8 * (1.0 - brightness)
    burst = signal.lfilter([1.0 - coef], [1.0, -coef], burst)
    shift = max(1, int(pick * period))  # pick position: a comb on the excitation
    burst[shift:] -= burst[:-shift]
    pad = m + 3
    y = np.zeros(num_samples + pad)
    y[pad:pad + min(len(burst), num_samples)] = burst[:num_samples]
    k0, k1, k2, k3 = gain * kernel
    for start in range(pad, num_samples + pad, m):
        stop = min(start + m, num_samples + pad)
        n = stop - start
        a = start - m
        y[start:stop] += (k0 * y[a:a + n] + k1 * y[a - 1:a - 1 + n] + k2 * y[a - 2:a - 2 + n]
                          + k3 * y[a - 3:a - 3 + n])
    return y[pad:]


@lru_cache(maxsize=16)
def _reverb_ir(sample_rate: int, decay_s: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    length = int(decay_s * sample_rate)
    t = np.arange(length) / sample_rate
    noise = rng.standard_normal((2, length))
    # highs die faster than lows, as in a real room
    low = filt(noise, "lowpass", 2500.0, sample_rate) * np.exp(-6.91 * t / decay_s)
    high = filt(noise, "highpass", 2500.0, sample_rate) * np.exp(-6.91 * t / (0.45 * decay_s))
    ir = low + 0.6 * high
    predelay = int(0.012 * sample_rate)
    ir = np.concatenate((np.zeros((2, predelay)), ir), axis=1)
    return ir / np.sqrt(np.sum(ir ** 2) / 2.0)


def reverb(x: np.ndarray, sample_rate: int, *, decay_s: float, wet: float,
           seed: int = 11) -> np.ndarray:
    """Stereo convolution reverb with a synthetic room: decorrelated noise decaying 60 dB in
    ``decay_s``. ``x`` is ``(2, n)``; returns ``(2, n)`` (the tail past ``n`` is dropped)."""
    if wet <= 0:
        return x
    ir = _reverb_ir(int(sample_rate), float(decay_s), int(seed))
    mono = x.mean(axis=0)
    n = x.shape[-1]
    tail = np.stack([signal.oaconvolve(mono, ir[c])[:n] for c in range(2)])
    return x + wet * tail


def tempo_delay(x: np.ndarray, sample_rate: int, *, delay_s: float, feedback: float,
                wet: float, repeats: int = 5) -> np.ndarray:
    """Ping-pong echo: repeat ``k`` lands ``k * delay_s`` later at ``feedback ** k``, alternating
    left and right, each darker than the last. ``x`` is ``(2, n)``."""
    if wet <= 0:
        return x
    out = x.copy()
    mono = x.mean(axis=0)
    step = int(round(delay_s * sample_rate))
    echo = mono
    for k in range(1, repeats + 1):
        echo = filt(echo, "lowpass", 4500.0, sample_rate)
        shift = k * step
        if shift >= x.shape[-1]:
            break
        channel = (k + 1) % 2
        out[channel, shift:] += wet * feedback ** (k - 1) * echo[:-shift]
    return out


def pan_stereo(mono: np.ndarray, pan: float) -> np.ndarray:
    """Constant-power pan of a mono signal to ``(2, n)``; ``pan`` in [-1, 1]."""
    angle = (pan + 1.0) * np.pi / 4.0
    return np.stack((np.cos(angle) * mono, np.sin(angle) * mono)) * np.sqrt(2.0)
