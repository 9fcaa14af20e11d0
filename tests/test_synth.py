"""The embedded synthetic corpus: espeak binding, audio effects, trials, and `cimc synth-corpus` end to end."""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner

from cimc.cli import cli
from cimc.data import synth
from cimc.data.espeak import EspeakError, SynthRequest, get_engine
from cimc.data.synth import (ACCENTS, FEMALE_VARIANTS, MALE_VARIANTS, SynthConfig, colored_noise, make_trials,
                             peaking_eq, sample_speaker, shift_formants, simulate_rir, synthesize_speaker)
from cimc.data.trials import check_trials_known, read_trials

TINY = ["--num-speakers", "3", "--utts-per-speaker", "3", "--num-test-speakers", "2", "--seed", "7"]


def _read_kaldi_map(path: Path) -> dict[str, str]:
    return dict(line.split(maxsplit=1) for line in path.read_text().splitlines())


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> tuple[Path, Path]:
    """The same tiny corpus generated twice in this one process (espeak's hidden state must not leak),
    the second time by 2 worker processes."""
    outs = []
    for name, nj in (("a", "1"), ("b", "2")):
        out = tmp_path_factory.mktemp(name)
        result = CliRunner().invoke(cli, ["synth-corpus", "--output-dir", str(out), "--nj", nj, *TINY])
        assert result.exit_code == 0, result.output + repr(result.exception)
        assert "trials" in result.output and "train" in result.output  # the summary table
        outs.append(out)
    return outs[0], outs[1]


def test_help_lists_the_recipe_flags():
    result = CliRunner().invoke(cli, ["synth-corpus", "--help"])
    assert result.exit_code == 0
    for flag in ("--output-dir", "--num-speakers", "--utts-per-speaker", "--num-test-speakers", "--seed"):
        assert flag in result.output


@pytest.mark.parametrize("args, named", [(["--num-test-speakers", "1"], "num_test_speakers"),
                                          (["snr_db_typo=[0,10]"], "snr_db_typo")])
def test_bad_arguments_are_named(tmp_path, args, named):
    result = CliRunner().invoke(cli, ["synth-corpus", "--output-dir", str(tmp_path), *args])
    assert result.exit_code == 2 and named in result.output


def test_same_arguments_give_byte_identical_audio(corpora):
    a, b = corpora
    files_a = sorted(p.relative_to(a) for p in a.glob("wav/*/*.wav"))
    assert len(files_a) == (3 + 2) * 3
    assert files_a == sorted(p.relative_to(b) for p in b.glob("wav/*/*.wav"))
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert (a / "trials.txt").read_text() == (b / "trials.txt").read_text()


def test_speaker_audio_does_not_depend_on_what_was_synthesized_before():
    config = SynthConfig(utts_per_speaker=2)
    first, other = sample_speaker(config, "train", 0), sample_speaker(config, "train", 1)
    before = synthesize_speaker(first, 2, config)
    synthesize_speaker(other, 2, config)
    after = synthesize_speaker(first, 2, config)
    assert [u.samples.tobytes() for u in before] == [u.samples.tobytes() for u in after]
    # Growing the corpus keeps existing speakers: a profile depends only on (seed, part, index).
    assert sample_speaker(dataclasses.replace(config, num_speakers=500), "train", 0) == first


def test_manifests_load_with_lhotse_and_match_the_files(corpora):
    from lhotse import load_manifest

    out = corpora[0]
    speakers = {}
    for part, num_speakers in (("train", 3), ("test", 2)):
        cuts = load_manifest(out / "manifests" / f"{part}_cuts.jsonl.gz")
        recordings = load_manifest(out / "manifests" / f"{part}_recordings.jsonl.gz")
        supervisions = load_manifest(out / "manifests" / f"{part}_supervisions.jsonl.gz")
        utt2spk = _read_kaldi_map(out / "kaldi" / part / "utt2spk")
        wav_scp = _read_kaldi_map(out / "kaldi" / part / "wav.scp")
        assert sorted(cuts.ids) == sorted(recordings.ids) == sorted(s.id for s in supervisions) == sorted(utt2spk)
        for cut in cuts:
            (sup,) = cut.supervisions
            assert cut.recording.id == sup.recording_id == cut.id
            assert sup.speaker == utt2spk[cut.id] and cut.id.startswith(sup.speaker)
            samples, rate = soundfile.read(wav_scp[cut.id], dtype="float32")
            assert rate == 16000 and cut.sampling_rate == 16000
            np.testing.assert_allclose(cut.load_audio()[0], samples, atol=1e-6)
            assert cut.duration == pytest.approx(len(samples) / rate)
            assert 1.0 <= cut.duration <= 8.0  # aimed at 2-6 s; espeak's tempo varies with the words
        spk2utt = {spk: utts.split() for spk, utts in _read_kaldi_map(out / "kaldi" / part / "spk2utt").items()}
        assert sorted(u for utts in spk2utt.values() for u in utts) == sorted(utt2spk)
        assert all(utt2spk[u] == spk for spk, utts in spk2utt.items() for u in utts)
        assert list(utt2spk) == sorted(utt2spk)  # Kaldi wants sorted files
        speakers[part] = set(spk2utt)
        assert 2.0 <= np.median([c.duration for c in cuts]) <= 6.0
        assert len(speakers[part]) == num_speakers
    assert not speakers["train"] & speakers["test"]


def test_trials_pair_test_utterances_with_both_labels(corpora):
    out = corpora[0]
    trials = read_trials(out / "trials.txt")
    utt2spk = _read_kaldi_map(out / "kaldi" / "test" / "utt2spk")
    check_trials_known(trials, utt2spk, "test utt2spk")
    assert {t.target for t in trials} == {True, False}
    assert all(t.target == (utt2spk[t.enroll] == utt2spk[t.test]) for t in trials)
    # 2 speakers x 3 utterances: 6 target pairs, all 9 non-target ones (3 per target, capped).
    assert sum(t.target for t in trials) == 6 and len(trials) == 15


def test_no_training_speaker_repeats_a_sentence(corpora):
    from lhotse import load_manifest

    texts = defaultdict(list)
    for sup in load_manifest(corpora[0] / "manifests" / "train_supervisions.jsonl.gz"):
        texts[sup.speaker].append(sup.text)
    assert all(len(set(t)) == len(t) for t in texts.values())


def test_sentence_collisions_are_redrawn(monkeypatch):
    # A generator with only 6 sentences: 6 utterances must still be 6 different ones.
    monkeypatch.setattr(synth, "make_sentence", lambda rng, num_words: f"Sentence {int(rng.integers(6))}.")
    config, used = SynthConfig(), set()
    spk = sample_speaker(config, "train", 0)
    for index in range(6):
        used.add(synth._plan_utterance(config, spk, index, 0, used).text)
    assert len(used) == 6


def test_pauses_are_never_digital_zero(corpora):
    raw = get_engine().synthesize([SynthRequest("One. Two, three.", "en-us+m1", 175, 50, 50)])[0]
    frames = raw[: len(raw) // 220 * 220].reshape(-1, 220)
    assert (np.abs(frames).max(axis=1) == 0).any()  # espeak itself leaves exact-zero gaps
    for path in corpora[0].glob("wav/*/*.wav"):
        samples, _ = soundfile.read(path, dtype="int16")
        frames = samples[: len(samples) // 160 * 160].reshape(-1, 160)  # 10 ms frames
        assert (np.abs(frames).max(axis=1) > 0).all(), path
        assert np.mean(samples == 0) < 0.01, path


def _median_f0(audio: np.ndarray, rate: int) -> float:
    """Autocorrelation pitch of the louder 40 ms frames (a naive reference tracker)."""
    frame, hop, ref, f0s = int(0.04 * rate), int(0.01 * rate), np.sqrt(np.mean(audio**2)), []
    for start in range(0, len(audio) - frame, hop):
        x = audio[start:start + frame] - audio[start:start + frame].mean()
        if np.sqrt(np.mean(x**2)) < 0.3 * ref:
            continue
        ac = np.correlate(x, x, "full")[frame - 1:]
        lag = int(rate / 450) + int(np.argmax(ac[int(rate / 450):int(rate / 55)]))
        if ac[lag] > 0.5 * ac[0]:
            f0s.append(rate / lag)
    return float(np.median(f0s))


def test_speakers_pitch_follows_their_profile_across_formant_factors():
    config, engine = SynthConfig(), get_engine()
    profiles = [sample_speaker(config, "train", i) for i in range(10)]
    requests = [synth._plan_utterance(config, p, 0, 0, set()).request for p in profiles]
    measured = [_median_f0(shift_formants(raw, engine.sampling_rate, p.formant_factor, 16000), 16000)
                for p, raw in zip(profiles, engine.synthesize(requests))]
    targets = np.array([p.pitch_hz for p in profiles])
    assert len({p.gender for p in profiles}) == 2 and targets.max() / targets.min() > 1.5
    # Most within 20 % (the naive tracker makes the odd octave error), whatever the formant factor.
    within = np.abs(np.log(np.array(measured) / targets)) < np.log(1.2)
    assert within.mean() >= 0.8, list(zip(targets, measured))


def test_distinct_speakers_sound_different():
    """Long-term log spectra of clean speech are closer within a speaker than across speakers."""
    clean = SynthConfig(snr_db=(80.0, 80.0), rir_probability=0.0, highpass_hz=(20.0, 20.0),
                        lowpass_hz=(7900.0, 7900.0), eq_bands=0)
    spectra, owners = [], []
    for index in range(4):
        for utt in synthesize_speaker(sample_speaker(clean, "train", index), 3, clean):
            x = utt.samples.astype(np.float64)
            frames = x[: len(x) // 512 * 512].reshape(-1, 512) * np.hanning(512)
            spectrum = np.log(np.mean(np.abs(np.fft.rfft(frames))**2, axis=0) + 1e-3)
            spectra.append(spectrum - spectrum.mean())
            owners.append(index)
    spectra = np.array(spectra) / np.linalg.norm(spectra, axis=1, keepdims=True)
    similarity, owners = spectra @ spectra.T, np.array(owners)
    same = owners[:, None] == owners[None, :]
    off_diagonal = ~np.eye(len(owners), dtype=bool)
    assert similarity[same & off_diagonal].mean() > similarity[~same].mean() + 0.05
    assert not np.allclose(spectra[0], spectra[-1])


def test_every_voice_and_accent_speaks_and_unknown_voices_are_named():
    voices = [f"{a}+m1" for a in ACCENTS] + [f"en-us+{v}" for v in MALE_VARIANTS + FEMALE_VARIANTS]
    outputs = get_engine().synthesize([SynthRequest("Hello there.", v, 175, 50, 50) for v in voices])
    assert all(len(o) > 0.3 * get_engine().sampling_rate for o in outputs)
    with pytest.raises(EspeakError, match="no-such-voice"):
        get_engine().synthesize([SynthRequest("Hello.", "no-such-voice", 175, 50, 50)])


def test_shift_formants_scales_frequencies_by_the_factor():
    rate = 22050
    tone = (8000 * np.sin(2 * np.pi * 1000 * np.arange(rate) / rate)).astype(np.int16)
    for factor in (0.85, 1.2):
        out = shift_formants(tone, rate, factor, 16000)
        assert len(out) == pytest.approx(16000 / factor, rel=1e-3)
        peak_hz = np.argmax(np.abs(np.fft.rfft(out * np.hanning(len(out))))) * 16000 / len(out)
        assert peak_hz == pytest.approx(1000 * factor, abs=3)


def test_simulated_rir_decays_at_its_rt60():
    rate, rt60 = 16000, 0.4
    rir = simulate_rir(np.random.default_rng(0), rate, rt60)
    assert np.argmax(np.abs(rir)) == 0 and np.sum(rir**2) == pytest.approx(1.0)
    # Schroeder backward integration; fit the -5..-25 dB part of the diffuse tail.
    tail = rir.copy()
    tail[0] = 0.0
    decay = 10 * np.log10(np.cumsum(tail[::-1] ** 2)[::-1] / np.sum(tail**2))
    fit = (decay < -5) & (decay > -25)
    slope_db_per_s = np.polyfit(np.arange(len(rir))[fit] / rate, decay[fit], 1)[0]
    assert -60 / slope_db_per_s == pytest.approx(rt60, rel=0.2)


@pytest.mark.parametrize("gain_db", [-6.0, 4.5])
def test_peaking_eq_has_its_gain_at_the_centre_and_none_far_away(gain_db):
    from scipy import signal

    freqs, response = signal.sosfreqz(peaking_eq(1000.0, gain_db, 1.0, 16000), worN=[20.0, 1000.0, 7900.0], fs=16000)
    np.testing.assert_allclose(20 * np.log10(np.abs(response)), [0.0, gain_db, 0.0], atol=0.1)


@pytest.mark.parametrize("slope", [0.0, -1.0])
def test_colored_noise_has_the_requested_spectral_slope(slope):
    noise = colored_noise(np.random.default_rng(1), 2**16, slope)
    assert np.sqrt(np.mean(noise**2)) == pytest.approx(1.0)
    freqs = np.fft.rfftfreq(len(noise))
    power = np.abs(np.fft.rfft(noise)) ** 2
    band = (freqs > 0.005) & (freqs < 0.45)
    fitted = np.polyfit(np.log(freqs[band]), np.log(power[band]), 1)[0]
    assert fitted == pytest.approx(slope, abs=0.1)


def test_make_trials_matches_brute_force():
    utt2spk = {f"s{s}-{u}": f"s{s}" for s in range(4) for u in range(s + 1)}  # 1, 2, 3, 4 utterances
    trials = make_trials(utt2spk, np.random.default_rng(0), nontarget_per_target=1.5)
    pairs = [(a, b) for a in sorted(utt2spk) for b in sorted(utt2spk) if a < b]
    expected_targets = {(a, b) for a, b in pairs if utt2spk[a] == utt2spk[b]}
    assert {(t.enroll, t.test) for t in trials if t.target} == expected_targets
    nontargets = [(t.enroll, t.test) for t in trials if not t.target]
    assert len(nontargets) == len(set(nontargets)) == round(1.5 * len(expected_targets))
    assert all(utt2spk[a] != utt2spk[b] and (a, b) in pairs for a, b in nontargets)
    with pytest.raises(ValueError, match="2 speakers"):
        make_trials({"a-1": "a", "a-2": "a"}, np.random.default_rng(0))
