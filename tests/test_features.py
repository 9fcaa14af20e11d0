"""Stage 1 front end: extractor vs kaldi-native-fbank and Lhotse, Kaldi VAD, sliding CMN, Lhotse registry."""
from __future__ import annotations

import kaldi_native_fbank as knf
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cimc.features import CmnConfig, FbankConfig, MfccConfig, VadConfig, compute_vad, make_extractor, sliding_cmn
from cimc.features.cmn import cmn_windows
from cimc.features.vad import vad_log_energy

SR = 16000


def noise_bursts(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Float waveform in [-1, 1] with a loud and a quiet half, so energies vary across frames."""
    x = np.random.default_rng(seed).standard_normal(int(SR * seconds)).astype(np.float32) * 0.1
    x[len(x) // 2 :] *= 0.01
    return x


def direct_knf(samples: np.ndarray, mfcc: bool, window: str, bins: int, ceps: int, use_energy: bool) -> np.ndarray:
    """Features straight from kaldi-native-fbank, options set by hand (the reference, not our mapping)."""
    opts = knf.MfccOptions() if mfcc else knf.FbankOptions()
    opts.frame_opts.samp_freq = SR
    opts.frame_opts.frame_length_ms = 25
    opts.frame_opts.frame_shift_ms = 10
    opts.frame_opts.window_type = window
    opts.frame_opts.dither = 0.0
    opts.frame_opts.snip_edges = False
    opts.mel_opts.num_bins = bins
    opts.mel_opts.low_freq = 20
    opts.mel_opts.high_freq = -400
    opts.use_energy = use_energy
    if mfcc:
        opts.num_ceps = ceps
    computer = knf.OnlineMfcc(opts) if mfcc else knf.OnlineFbank(opts)
    computer.accept_waveform(SR, (samples * 32768).tolist())
    computer.input_finished()
    return np.array([computer.get_frame(i) for i in range(computer.num_frames_ready)], dtype=np.float32)


@pytest.mark.parametrize("window", ["hamming", "povey"])
@pytest.mark.parametrize(
    "config,mfcc,bins,ceps",
    [(MfccConfig(), True, 40, 40), (MfccConfig(num_mel_bins=30, num_ceps=20, use_energy=False), True, 30, 20),
     (FbankConfig(), False, 80, 0), (FbankConfig(use_energy=True), False, 80, 0)],
)
def test_extractor_equals_kaldi_native_fbank(config, mfcc, bins, ceps, window):
    config.window_type = window
    x = noise_bursts()
    ours = make_extractor(config).extract(x, SR)
    ref = direct_knf(x, mfcc, window, bins, ceps, config.use_energy)
    assert ours.dtype == np.float32
    assert ours.shape == ref.shape == (200, make_extractor(config).feature_dim(SR))
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("window", ["hamming", "povey"])
def test_extractor_close_to_lhotse_kaldi_compatible(window):
    from lhotse.features.kaldi.extractors import Fbank, FbankConfig as LhotseFbankConfig
    from lhotse.features.kaldi.extractors import Mfcc, MfccConfig as LhotseMfccConfig

    x = noise_bursts(seed=1)
    # Lhotse works on [-1, 1] floats; ours on Kaldi's 16-bit scale, so give Lhotse the scaled signal.
    # (Lhotse's Mfcc fails with use_energy=True, so compare the cepstra without the energy column.)
    ours = make_extractor(MfccConfig(window_type=window, use_energy=False)).extract(x, SR)
    ref = Mfcc(LhotseMfccConfig(window_type=window, num_filters=40, num_ceps=40, energy_floor=0.0)).extract(
        x * 32768, SR
    )
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=5e-3, rtol=1e-4)
    ours = make_extractor(FbankConfig(window_type=window)).extract(x, SR)
    ref = Fbank(LhotseFbankConfig(window_type=window, num_filters=80)).extract(x * 32768, SR)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=2e-3, rtol=1e-4)


def test_extractor_registered_with_lhotse_and_serialisable():
    from lhotse.features.base import FeatureExtractor, get_extractor_type

    for config in (MfccConfig(num_ceps=13), FbankConfig(num_mel_bins=64)):
        extractor = make_extractor(config)
        assert get_extractor_type(extractor.name) is type(extractor)
        restored = FeatureExtractor.from_dict(extractor.to_dict())
        assert type(restored) is type(extractor) and restored.config == config


def test_extractor_errors_name_the_problem():
    extractor = make_extractor(MfccConfig())
    with pytest.raises(ValueError, match="16000 Hz .* 8000 Hz"):
        extractor.extract(np.zeros(8000, dtype=np.float32), 8000)
    with pytest.raises(ValueError, match="mono"):
        extractor.extract(np.zeros((2, 8000), dtype=np.float32), SR)
    with pytest.raises(ValueError, match="window_type"):
        MfccConfig(window_type="hann")
    with pytest.raises(ValueError, match="num_ceps"):
        MfccConfig(num_mel_bins=20, num_ceps=30)
    assert extractor.extract(np.zeros(0, dtype=np.float32), SR).shape == (0, 40)


# --- VAD ---------------------------------------------------------------------------------------


def naive_vad(log_energy: np.ndarray, config: VadConfig) -> np.ndarray:
    """Kaldi ComputeVadEnergy transcribed loop for loop."""
    num_frames = len(log_energy)
    threshold = config.energy_threshold + config.energy_mean_scale * (log_energy.sum() / num_frames)
    out = np.zeros(num_frames, dtype=bool)
    for t in range(num_frames):
        num = den = 0
        for t2 in range(t - config.frames_context, t + config.frames_context + 1):
            if 0 <= t2 < num_frames:
                den += 1
                num += log_energy[t2] > threshold
        out[t] = num >= den * config.proportion_threshold
    return out


def test_vad_hand_worked_example():
    energies = np.array([0.0, 10.0, 10.0, 0.0])
    plain = VadConfig(energy_threshold=5.0, energy_mean_scale=0.0)
    assert compute_vad(energies, plain).tolist() == [False, True, True, False]
    # context 1, proportion 0.6: frame 0 sees [0, 10] -> 1 of 2 < 1.2; frame 1 sees 2 of 3 >= 1.8.
    context = VadConfig(energy_threshold=5.0, energy_mean_scale=0.0, frames_context=1, proportion_threshold=0.6)
    assert compute_vad(energies, context).tolist() == [False, True, True, False]
    # mean scale 0.5: threshold 5 + 0.5 * 5 = 7.5, strictly above needed
    assert compute_vad(np.array([7.5, 8.0, 0.0, 4.5]), VadConfig()).tolist() == [False, True, False, False]


@settings(max_examples=60, deadline=None)
@given(
    energies=st.lists(st.floats(-5, 30, allow_nan=False), min_size=1, max_size=40),
    threshold=st.floats(0, 10), mean_scale=st.sampled_from([0.0, 0.5, 1.0]),
    context=st.integers(0, 4), proportion=st.floats(0.05, 0.95),
)
def test_vad_matches_kaldi_loop(energies, threshold, mean_scale, context, proportion):
    config = VadConfig(threshold, mean_scale, context, proportion)
    energies = np.array(energies)
    np.testing.assert_array_equal(compute_vad(energies, config), naive_vad(energies, config))


def test_vad_on_speech_and_silence_signal():
    """0.5 s near-silence, 1 s loud 'speech' (noise-modulated tone), 0.5 s near-silence."""
    rng = np.random.default_rng(3)
    t = np.arange(SR) / SR
    speech = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * rng.standard_normal(SR))
    x = np.concatenate([1e-4 * rng.standard_normal(SR // 2), speech, 1e-4 * rng.standard_normal(SR // 2)])
    config = MfccConfig()
    feats = make_extractor(config).extract(x.astype(np.float32), SR)
    voiced = compute_vad(vad_log_energy(feats, config), VadConfig(5.5, 0.5, 2, 0.12))
    assert voiced.shape == (200,)
    # Frame t covers samples [t*160 - 120, t*160 + 280) with snip-edges=false: frames 50..149 are speech.
    assert voiced[52:148].all()
    assert not voiced[:47].any() and not voiced[153:].any()


def test_vad_log_energy_sources():
    feats = np.log(np.array([[1.0, 3.0], [2.0, 2.0]]))
    np.testing.assert_allclose(vad_log_energy(feats, FbankConfig()), np.log([4.0, 4.0]))
    np.testing.assert_allclose(vad_log_energy(feats, MfccConfig()), feats[:, 0])
    np.testing.assert_allclose(vad_log_energy(feats, FbankConfig(use_energy=True)), feats[:, 0])


# --- CMN ---------------------------------------------------------------------------------------


def naive_sliding_cmn(x: np.ndarray, config: CmnConfig) -> np.ndarray:
    """Kaldi SlidingWindowCmnInternal (feature-functions.cc), one frame at a time, np.mean over the window."""
    num_frames = len(x)
    out = np.empty_like(x, dtype=np.float64)
    for t in range(num_frames):
        if config.center:
            start = t - config.window // 2
            end = start + config.window
        else:
            start, end = t - config.window, t + 1
        if start < 0:
            end -= start
            start = 0
        if not config.center and end > t:
            end = max(t + 1, config.min_window)
        if end > num_frames:
            start -= end - num_frames
            end = num_frames
            if start < 0:
                start = 0
        window = x[start:end].astype(np.float64)
        out[t] = x[t] - window.mean(axis=0)
        if config.normalize_variance:
            out[t] = 0.0 if len(window) == 1 else out[t] / np.sqrt(np.maximum(window.var(axis=0), 1e-10))
    return out


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("num_frames", [1, 7, 40, 333])
@pytest.mark.parametrize("normalize_variance", [False, True])
def test_sliding_cmn_matches_naive(center, num_frames, normalize_variance):
    x = np.random.default_rng(num_frames).standard_normal((num_frames, 5)) * 3 + 10
    config = CmnConfig(window=30, center=center, min_window=10, normalize_variance=normalize_variance)
    np.testing.assert_allclose(sliding_cmn(x, config), naive_sliding_cmn(x, config), atol=1e-4)


def test_sliding_cmn_closed_forms():
    x = np.random.default_rng(0).standard_normal((120, 3)) + 5
    # Shorter than the window: every frame is normalised by the global mean.
    np.testing.assert_allclose(sliding_cmn(x), x - x.mean(axis=0), atol=1e-5)
    # Centred window of 300 in a long utterance: frame 500 uses frames 350..649.
    y = np.random.default_rng(1).standard_normal((1000, 2))
    np.testing.assert_allclose(sliding_cmn(y)[500], y[500] - y[350:650].mean(axis=0), atol=1e-5)
    start, end = cmn_windows(1000)
    assert (end - start == 300).all() and start[0] == 0 and end[-1] == 1000
    # Past-only window (center=false): frame 5 uses frames 0..min_window-1, frame 500 uses 200..500.
    start, end = cmn_windows(1000, CmnConfig(center=False))
    assert (start[5], end[5]) == (0, 100) and (start[500], end[500]) == (200, 501)
