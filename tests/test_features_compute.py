"""`cimc compute-feats`: stored features + VAD, load_frames, parallel jobs, unreadable audio."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from cimc.features import FeaturePipelineConfig, VadConfig, compute_features, compute_vad, load_frames, sliding_cmn
from cimc.features.vad import vad_log_energy

SR = 16000


@pytest.fixture(scope="module")
def cuts_file(tmp_path_factory):
    """Three cuts of 0.5 s near-silence, 1 s noise 'speech', 0.5 s near-silence."""
    from lhotse import CutSet, MonoCut, Recording

    root = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    recordings = []
    for i in range(3):
        x = np.concatenate([rng.standard_normal(8000) * 1e-4, rng.standard_normal(SR) * 0.2,
                            rng.standard_normal(8000) * 1e-4]).astype(np.float32)
        sf.write(root / f"utt{i}.wav", x, SR)
        recordings.append(Recording.from_file(root / f"utt{i}.wav", recording_id=f"utt{i}"))
    path = root / "cuts.jsonl.gz"
    CutSet.from_cuts(
        MonoCut(id=r.id, start=0.0, duration=r.duration, channel=0, recording=r) for r in recordings
    ).to_file(path)
    return path


CONFIG = FeaturePipelineConfig(vad=VadConfig(5.5, 0.5, 2, 0.12))


def test_compute_features_stores_feats_vad_and_config(cuts_file, tmp_path):
    from lhotse import CutSet

    cuts = compute_features(cuts_file, CONFIG, tmp_path, "train", num_jobs=1)
    assert (tmp_path / "train_config.yaml").is_file() and (tmp_path / "train_vad.lca").is_file()
    stored = CutSet.from_file(tmp_path / "train_cuts.jsonl.gz")
    assert list(stored.ids) == list(cuts.ids) == ["utt0", "utt1", "utt2"]
    for cut in stored:
        feats = cut.load_features()
        assert feats.shape == (200, 40)
        voiced = compute_vad(vad_log_energy(feats, CONFIG.mfcc), CONFIG.vad)
        np.testing.assert_array_equal(cut.load_custom("vad") > 0.5, voiced)
        assert 90 <= voiced.sum() <= 110  # the 1 s of noise in the middle
        np.testing.assert_allclose(load_frames(cut), sliding_cmn(feats)[voiced], atol=1e-6)
        np.testing.assert_allclose(load_frames(cut, apply_vad=False, cmn=False), feats)
        assert load_frames(cut).dtype == np.float32


def test_parallel_jobs_give_the_same_cuts(cuts_file, tmp_path):
    import torch

    serial = compute_features(cuts_file, CONFIG, tmp_path / "a", "x", num_jobs=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        parallel = compute_features(cuts_file, CONFIG, tmp_path / "b", "x", num_jobs=2)
        assert torch.get_num_threads() == 2  # the jobs' one thread is not left behind for the caller
    finally:
        torch.set_num_threads(threads)
    assert list(serial.ids) == list(parallel.ids)
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a.load_features(), b.load_features())


def test_unreadable_audio_is_named_not_dropped_silently(cuts_file, tmp_path, caplog):
    from lhotse import CutSet, MonoCut, Recording
    from lhotse.audio import AudioSource

    cuts = CutSet.from_file(cuts_file).to_eager()
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wav")
    good = next(iter(cuts))
    recording = Recording(id="bad", sources=[AudioSource("file", [0], str(broken))], sampling_rate=SR,
                          num_samples=SR, duration=1.0)
    bad_cut = MonoCut(id="bad", start=0.0, duration=1.0, channel=0, recording=recording)
    CutSet.from_cuts([good, bad_cut]).to_file(tmp_path / "cuts.jsonl.gz")
    with caplog.at_level(logging.WARNING):
        out = compute_features(tmp_path / "cuts.jsonl.gz", CONFIG, tmp_path / "out", "t", num_jobs=1)
    assert list(out.ids) == ["utt0"]
    assert (tmp_path / "out" / "t_failed.txt").read_text() == "bad\n"
    assert "1 of 2 cuts had unreadable audio" in caplog.text and "bad" in caplog.text


def test_cli_compute_feats_with_overrides(cuts_file, tmp_path):
    from lhotse import CutSet

    from cimc.cli import cli

    conf = tmp_path / "mfcc.yaml"
    conf.write_text("feature_type: mfcc\nmfcc:\n  num_mel_bins: 30\n")
    result = CliRunner().invoke(cli, ["compute-feats", "--config", str(conf), "--cuts", str(cuts_file),
                                      "--output-dir", str(tmp_path), "--name", "test", "mfcc.num_ceps=13"])
    assert result.exit_code == 0, result.output
    cut = next(iter(CutSet.from_file(tmp_path / "test_cuts.jsonl.gz")))
    assert cut.load_features().shape == (200, 13)
    assert "num_ceps: 13" in (tmp_path / "test_config.yaml").read_text()
    bad = CliRunner().invoke(cli, ["compute-feats", "--cuts", str(cuts_file), "--output-dir", str(tmp_path),
                                   "--name", "x", "mfcc.num_cep=13"])
    assert bad.exit_code != 0 and "num_cep" in str(bad.exception)


def test_load_frames_without_features_or_vad_names_the_cut(cuts_file):
    from lhotse import CutSet

    cut = next(iter(CutSet.from_file(cuts_file)))
    with pytest.raises(ValueError, match="cut utt0 has no features"):
        load_frames(cut)


def test_rerun_keeps_finished_features_and_refuses_another_config(cuts_file, tmp_path, caplog):
    """A finished NAME is read back for the same settings (nothing rewritten) and refused for others."""
    import dataclasses
    import os
    import shutil

    from cimc.config import ConfigError

    cuts_copy = tmp_path / "cuts.jsonl.gz"
    shutil.copy(cuts_file, cuts_copy)
    out = tmp_path / "feats"
    first = compute_features(cuts_copy, CONFIG, out, "train", num_jobs=1)
    written = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}

    unused_changed = dataclasses.replace(CONFIG, fbank=dataclasses.replace(CONFIG.fbank, num_mel_bins=23))
    with caplog.at_level(logging.INFO):
        again = compute_features(cuts_copy, unused_changed, out, "train", num_jobs=1)  # MFCC run: fbank unused
    assert "features already computed" in caplog.text
    assert list(again.ids) == list(first.ids)
    np.testing.assert_array_equal(next(iter(again)).load_features(), next(iter(first)).load_features())
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == written

    other = dataclasses.replace(CONFIG, vad=dataclasses.replace(CONFIG.vad, energy_threshold=6.0))
    with pytest.raises(ConfigError, match=r"train_cuts.jsonl.gz holds features computed with another config .*"
                                          r"vad.energy_threshold 5.5 -> 6.0"):
        compute_features(cuts_copy, other, out, "train", num_jobs=1)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == written  # nothing overwritten

    later = (out / "train_cuts.jsonl.gz").stat().st_mtime + 5
    os.utime(cuts_copy, (later, later))  # the manifest rewritten after the features (stage 0 rerun)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        compute_features(cuts_copy, CONFIG, out, "train", num_jobs=1)
    assert "cuts.jsonl.gz is newer than the finished" in caplog.text and "train_*" in caplog.text

    (out / "train_cuts.jsonl.gz").unlink()  # unfinished (interrupted before the last write): computed afresh
    fresh = compute_features(cuts_copy, other, out, "train", num_jobs=1)
    assert list(fresh.ids) == list(first.ids) and "energy_threshold: 6.0" in (out / "train_config.yaml").read_text()
