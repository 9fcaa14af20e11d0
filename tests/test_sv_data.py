"""Training crops, padding of short utterances, augmentation and SpecAugment masks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cimc.sv.augment import WaveformAugmenter, add_noise, fit_length, reverberate, simulated_rir, spec_augment, synthetic_noise
from cimc.sv.config import AugmentConfig, FeatureConfig
from cimc.sv.data import CropDataset, RandomLengthCollate, label_index, speaker_of, split_heldout
from cimc.sv.toy import make_toy_cuts


def test_fit_length_repeats_short_and_crops_long():
    rng = np.random.default_rng(0)
    short = np.arange(5, dtype=np.float32)
    out = fit_length(short, 12, rng)
    assert out.shape == (12,)
    # Every sample of a repeated signal follows its predecessor cyclically.
    assert all((b - a) % 5 == 1 for a, b in zip(out[:-1], out[1:]))
    long = np.arange(100, dtype=np.float32)
    crop = fit_length(long, 10, rng)
    assert crop.shape == (10,) and np.all(np.diff(crop) == 1)
    np.testing.assert_array_equal(fit_length(np.zeros(0, np.float32), 7, rng), np.zeros(7))


def test_short_utterance_is_repeated_not_a_crash(tmp_path):
    cuts = list(make_toy_cuts(tmp_path, num_speakers=2, utts_per_speaker=1, seconds=0.3))
    config = AugmentConfig(prob=1.0)
    dataset = CropDataset(cuts, label_index(cuts), FeatureConfig(), seconds=2.0, train=True, augment=config)
    feats, label = dataset[0]
    assert feats.shape == (200, 40) and torch.isfinite(feats).all()
    assert label == 0 and dataset[1][1] == 1
    heldout = CropDataset(cuts, label_index(cuts), FeatureConfig(), seconds=2.0, train=False)
    torch.testing.assert_close(heldout[0][0], heldout[0][0])  # held-out crops are fixed


def test_collate_trims_to_one_length_in_range():
    batch = [(torch.randn(300, 4), 0), (torch.randn(300, 4), 3)]
    torch.manual_seed(0)
    lengths = set()
    for _ in range(20):
        feats, labels = RandomLengthCollate(200, 300)(batch)
        assert 200 <= feats.shape[1] <= 300 and feats.shape[0] == 2
        lengths.add(feats.shape[1])
    assert len(lengths) > 1
    assert labels.tolist() == [0, 3]


def test_add_noise_reaches_the_snr():
    rng = np.random.default_rng(0)
    speech = np.sin(np.linspace(0, 300, 16000)).astype(np.float32)
    noise = synthetic_noise(16000, rng)
    mixed = add_noise(speech, noise, 5.0)
    residual = mixed - speech
    assert 10 * np.log10(np.mean(speech**2) / np.mean(residual**2)) == pytest.approx(5.0, abs=1e-3)


def test_reverberation_keeps_length_power_and_alignment():
    rng = np.random.default_rng(0)
    rir = simulated_rir(16000, 0.4, rng)
    assert rir.argmax() == 0 and rir.size == 6400
    assert 10 * np.log10(1.0 / np.sum(rir[1:] ** 2)) == pytest.approx(3.0, abs=1e-3)  # direct-to-reverberant
    head, end = np.mean(rir[1:640] ** 2), np.mean(rir[-640:] ** 2)
    assert 10 * np.log10(head / end) > 40  # ~54 dB of exponential decay between the first and last 10 %
    speech = rng.standard_normal(8000).astype(np.float32)
    wet = reverberate(speech, rir)
    assert wet.shape == speech.shape
    assert np.mean(wet**2) == pytest.approx(np.mean(speech**2), rel=1e-4)
    assert np.corrcoef(wet, speech)[0, 1] > 0.5  # direct path stays aligned


def test_augmenter_uses_real_noise_manifest(tmp_path):
    noise_cuts = make_toy_cuts(tmp_path / "noise", num_speakers=1, utts_per_speaker=1, seconds=0.5)
    noise_cuts.to_file(tmp_path / "noise.jsonl.gz")
    augmenter = WaveformAugmenter(AugmentConfig(prob=1.0, noise_cuts=str(tmp_path / "noise.jsonl.gz")), 16000)
    speech = np.zeros(16000, np.float32)
    speech[::100] = 1.0
    rng = np.random.default_rng(0)
    outputs = [augmenter(speech, rng) for _ in range(6)]
    assert all(o.shape == speech.shape for o in outputs) and any(not np.allclose(o, speech) for o in outputs)
    with pytest.raises(FileNotFoundError, match="missing.jsonl.gz"):
        WaveformAugmenter(AugmentConfig(rir_cuts=str(tmp_path / "missing.jsonl.gz")), 16000)


def test_spec_augment_masks_contiguous_spans():
    config = AugmentConfig(time_masks=1, max_time_mask=10, freq_masks=1, max_freq_mask=5)
    feats = spec_augment(torch.ones(8, 100, 40), config, torch.Generator().manual_seed(0))
    for utt in feats:
        zero_frames = torch.nonzero((utt == 0).all(dim=1)).flatten()
        zero_bins = torch.nonzero((utt == 0).all(dim=0)).flatten()
        assert len(zero_frames) <= 10 and len(zero_bins) <= 5
        for idx in (zero_frames, zero_bins):
            if len(idx):
                assert idx[-1] - idx[0] + 1 == len(idx)
    assert (feats == 0).any()


def test_heldout_split_and_labels(tmp_path):
    cuts = list(make_toy_cuts(tmp_path, num_speakers=3, utts_per_speaker=4, seconds=0.2))
    train, heldout = split_heldout(cuts, 0.25, 1, seed=0)
    assert len(heldout) == 3 and len(train) == 9
    assert not {c.id for c in train} & {c.id for c in heldout}
    assert label_index(cuts) == {"spk0": 0, "spk1": 1, "spk2": 2}
    with pytest.raises(ValueError, match="nothing"):
        split_heldout(cuts, 1.0, 1, seed=0)
    cuts[0].supervisions = []
    with pytest.raises(ValueError, match=cuts[0].id):
        speaker_of(cuts[0])
