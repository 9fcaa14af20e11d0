"""The embedded corpus: many synthetic English speakers from libespeak-ng, noisy and reverberant, reproducible.

A speaker is a fixed voice configuration (:class:`SpeakerProfile`): espeak voice variant, English accent,
vocal-tract-length (formant) factor ``f``, median pitch, intonation range, speaking rate. Formants are
shifted without changing pitch or tempo by synthesizing at pitch ``p / f`` and rate ``r / f`` and then
playing the result ``f`` times faster (resampling from ``22050 * f`` Hz to 16 kHz): every frequency,
formants and F0 alike, scales by ``f`` and every duration by ``1 / f``.

Each utterance has its own generated sentence (never repeated by a speaker), rate, pitch, intonation and
formant jitter, a random channel (band-pass plus EQ peaks and dips), sometimes a simulated room impulse
response, and additive coloured noise at a random SNR, so pauses are never digital zero. Everything
derives from ``seed`` through per-speaker and per-utterance random streams, so the same arguments give
byte-identical audio, and adding speakers leaves the existing ones unchanged.

How hard it is (default corpus, 10 test speakers, 7,600 trials): cosine on per-utterance MFCC mean+std
gives ~20 % EER, the same after an LDA trained on the 40 training speakers ~7.6 %: speakers are
distinguishable, but not trivially, much as the paper's i-vector baseline sits at ~5 % on VoxCeleb1-O.

Layout written by :func:`synthesize_corpus` (the recipes' data contract)::

    out/wav/<speaker>/<utterance>.wav     16 kHz, 16-bit mono
    out/manifests/{train,test}_{recordings,supervisions,cuts}.jsonl.gz
    out/kaldi/{train,test}/{wav.scp,utt2spk,spk2utt}
    out/trials.txt                        test-set pairs, ``enroll test target|nontarget``
    out/speakers.tsv, out/synth_config.yaml, out/summary.txt
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy import signal
from tqdm import tqdm

from cimc.data.espeak import SynthRequest, get_engine, pitch_parameter
from cimc.data.sentences import make_sentence
from cimc.data.trials import Trial, write_trials
from cimc.utils import atomic_path, write_text_atomic

logger = logging.getLogger(__name__)

# Voice variants that sound like plausible adult voices (the robots, whispers and cartoons are left out).
MALE_VARIANTS = ("m1 m2 m3 m4 m5 m6 m7 m8 adam benjamin david edward paul rob robert Michael norbert quincy "
                 "max Gene victor klatt klatt2 klatt3 klatt4 iven marcelo").split()
FEMALE_VARIANTS = "f1 f2 f3 f4 f5 linda belinda steph anika aunty grandma shelby".split()
ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029",
           "en-us-nyc")
PART_CODES = {"train": 0, "test": 1}
SPEAKER_PREFIX = {"train": "spk", "test": "tst"}
# espeak reads about this many words per second per (wpm / 60): measured on the generated sentences.
WORDS_PER_NOMINAL_WORD = 1.2
MAX_LENGTH_ROUNDS = 3


@dataclass
class SynthConfig:
    """Everything that decides the corpus; saved as ``synth_config.yaml`` beside it.

    Ranges are ``(low, high)`` of a uniform draw (pitch: log-uniform). Durations in seconds.
    """

    num_speakers: int = 40
    utts_per_speaker: int = 20
    num_test_speakers: int = 10
    seed: int = 0
    sampling_rate: int = 16000
    duration: tuple[float, float] = (2.0, 6.0)
    formant_factor_male: tuple[float, float] = (0.85, 1.05)
    formant_factor_female: tuple[float, float] = (1.0, 1.2)
    pitch_hz_male: tuple[float, float] = (80.0, 150.0)
    pitch_hz_female: tuple[float, float] = (150.0, 250.0)
    pitch_range: tuple[int, int] = (20, 85)
    rate_wpm: tuple[float, float] = (135.0, 195.0)
    rate_jitter: float = 0.08
    pitch_jitter: float = 0.1
    formant_jitter: float = 0.03
    pitch_range_jitter: int = 10
    snr_db: tuple[float, float] = (5.0, 30.0)
    noise_slope: tuple[float, float] = (-1.5, 0.0)
    rir_probability: float = 0.3
    rt60: tuple[float, float] = (0.15, 0.6)
    level_dbfs: tuple[float, float] = (-30.0, -20.0)
    highpass_hz: tuple[float, float] = (50.0, 200.0)
    eq_bands: int = 2
    eq_gain_db: float = 6.0
    lowpass_hz: tuple[float, float] = (3400.0, 7600.0)
    nontarget_per_target: float = 3.0
    max_target_trials: int = 20000

    def __post_init__(self) -> None:
        if self.num_speakers < 1 or self.utts_per_speaker < 1:
            raise ValueError("num_speakers and utts_per_speaker must be at least 1")
        if self.num_test_speakers == 1 or self.num_test_speakers < 0:
            raise ValueError(f"num_test_speakers={self.num_test_speakers}: need 0 (no test set) or at least 2 "
                             "for non-target trials")
        if not 0 < self.duration[0] < self.duration[1]:
            raise ValueError(f"duration={self.duration}: need 0 < min < max seconds")


@dataclass(frozen=True)
class SpeakerProfile:
    """A synthetic speaker's fixed voice; ``pitch_hz`` is the median F0 of its speech."""

    id: str
    part: str
    index: int
    gender: str
    variant: str
    accent: str
    formant_factor: float
    pitch_hz: float
    pitch_range: int
    rate_wpm: float
    word_gap: int


@dataclass
class Utterance:
    """One rendered utterance: int16 samples (N,) at ``sampling_rate`` Hz, and what produced it."""

    id: str
    speaker: SpeakerProfile
    text: str
    samples: np.ndarray = field(repr=False)
    sampling_rate: int = 16000

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sampling_rate


def _stream(seed: int, part: str, *indices: int) -> np.random.Generator:
    """An independent random stream per (seed, part, speaker[, utterance, attempt])."""
    return np.random.default_rng([seed, PART_CODES[part], *indices])


def sample_speaker(config: SynthConfig, part: str, index: int) -> SpeakerProfile:
    """Draw speaker ``index`` of ``part``; depends only on (seed, part, index)."""
    rng = _stream(config.seed, part, index)
    gender = "f" if rng.random() < 0.5 else "m"
    variants, f_range, p_range = ((FEMALE_VARIANTS, config.formant_factor_female, config.pitch_hz_female)
                                  if gender == "f" else
                                  (MALE_VARIANTS, config.formant_factor_male, config.pitch_hz_male))
    return SpeakerProfile(
        id=f"{SPEAKER_PREFIX[part]}{index + 1:04d}",
        part=part,
        index=index,
        gender=gender,
        variant=variants[int(rng.integers(len(variants)))],
        accent=ACCENTS[int(rng.integers(len(ACCENTS)))],
        formant_factor=round(float(rng.uniform(*f_range)), 3),
        pitch_hz=round(float(np.exp(rng.uniform(*np.log(p_range)))), 1),
        pitch_range=int(rng.integers(config.pitch_range[0], config.pitch_range[1] + 1)),
        rate_wpm=round(float(rng.uniform(*config.rate_wpm)), 1),
        word_gap=int(rng.integers(0, 3)),
    )


# ---------------------------------------------------------------------------------------------- audio
def shift_formants(raw: np.ndarray, espeak_rate: int, factor: float, sampling_rate: int) -> np.ndarray:
    """Play int16 espeak audio ``factor`` times faster and resample it: (N,) -> (M,) float in [-1, 1].

    Treating the ``espeak_rate`` samples as if recorded at ``espeak_rate * factor`` multiplies all
    frequencies by ``factor``; the resampling ratio is rounded to a fraction with a small denominator
    (relative error < 1e-4) so the polyphase filter stays short.
    """
    ratio = Fraction(sampling_rate / (espeak_rate * factor)).limit_denominator(200)
    audio = raw.astype(np.float64) / 32768.0
    return signal.resample_poly(audio, ratio.numerator, ratio.denominator)


def simulate_rir(rng: np.random.Generator, sampling_rate: int, rt60: float) -> np.ndarray:
    """A synthetic room impulse response (L,): direct path, then exponentially decaying diffuse noise.

    The tail decays by 60 dB in ``rt60`` seconds; the direct-to-reverberant ratio is drawn in 0-12 dB.
    """
    length = max(int(rt60 * sampling_rate), 2)
    t = np.arange(length) / sampling_rate
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / rt60)
    predelay = int(rng.uniform(0.002, 0.01) * sampling_rate)
    tail[: predelay + 1] = 0.0
    direct_energy = np.sum(tail**2) * 10 ** (rng.uniform(0.0, 12.0) / 10)
    tail[0] = np.sqrt(direct_energy)
    return tail / np.sqrt(np.sum(tail**2))


def colored_noise(rng: np.random.Generator, num_samples: int, slope: float) -> np.ndarray:
    """Gaussian noise (N,) with power spectrum ~ f**slope (0 white, -1 pink), unit RMS."""
    from scipy import fft

    length = fft.next_fast_len(num_samples, real=True)  # odd lengths with large prime factors are slow
    spectrum = fft.rfft(rng.standard_normal(length))
    freqs = np.arange(len(spectrum), dtype=np.float64)
    freqs[0] = 1.0
    noise = fft.irfft(spectrum * freqs ** (slope / 2), n=length)[:num_samples]
    return noise / np.sqrt(np.mean(noise**2))


def peaking_eq(freq_hz: float, gain_db: float, q: float, sampling_rate: int) -> np.ndarray:
    """A peaking-EQ biquad (RBJ Audio EQ Cookbook) as one SOS row (1, 6): ``gain_db`` at ``freq_hz``."""
    amplitude, w0 = 10 ** (gain_db / 40), 2 * np.pi * freq_hz / sampling_rate
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * amplitude, -2 * np.cos(w0), 1 - alpha * amplitude])
    a = np.array([1 + alpha / amplitude, -2 * np.cos(w0), 1 - alpha / amplitude])
    return np.concatenate([b / a[0], a / a[0]])[None, :]


def random_channel(rng: np.random.Generator, config: SynthConfig) -> np.ndarray:
    """A random microphone/channel as SOS (K, 6): a band-pass and ``eq_bands`` peaks or dips.

    Session variability: the same speaker sounds different from one recording to the next.
    """
    sr = config.sampling_rate
    band = (rng.uniform(*config.highpass_hz), min(rng.uniform(*config.lowpass_hz), 0.45 * sr))
    sections = [signal.butter(2, band, btype="bandpass", fs=sr, output="sos")]
    for _ in range(config.eq_bands):
        freq = np.exp(rng.uniform(np.log(300.0), np.log(min(5000.0, 0.4 * sr))))
        sections.append(peaking_eq(freq, rng.uniform(-1, 1) * config.eq_gain_db, rng.uniform(0.7, 2.0), sr))
    return np.concatenate(sections)


def degrade(speech: np.ndarray, rng: np.random.Generator, config: SynthConfig) -> np.ndarray:
    """Pad, reverberate (sometimes), band-limit, add noise and quantise: (N,) float -> (M,) int16.

    Noise covers the whole signal, padding included, so no stretch is ever digital zero.
    """
    sr = config.sampling_rate
    lead, trail = (int(rng.uniform(0.1, 0.4) * sr) for _ in range(2))
    x = np.concatenate([np.zeros(lead), speech, np.zeros(trail)])
    if rng.random() < config.rir_probability:
        x = signal.fftconvolve(x, simulate_rir(rng, sr, rng.uniform(*config.rt60)))[: len(x)]
    x /= np.sqrt(np.mean(x**2)) + 1e-12
    noise = colored_noise(rng, len(x), rng.uniform(*config.noise_slope))
    x = x + noise * 10 ** (-rng.uniform(*config.snr_db) / 20)
    x = signal.sosfilt(random_channel(rng, config), x)
    x *= 10 ** (rng.uniform(*config.level_dbfs) / 20) / np.sqrt(np.mean(x**2))
    x /= max(1.0, np.max(np.abs(x)) / 0.95)  # never clip
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)


# ------------------------------------------------------------------------------------------ utterances
@dataclass
class _Plan:
    """What espeak is asked for one utterance, and the random stream for its degradation."""

    index: int
    text: str
    num_words: int
    target_seconds: float
    formant_factor: float
    request: SynthRequest
    rng: np.random.Generator


def _plan_utterance(config: SynthConfig, spk: SpeakerProfile, index: int, attempt: int, used: set[str],
                    num_words: int | None = None) -> _Plan:
    rng = _stream(config.seed, spk.part, spk.index, index, attempt)
    target = rng.uniform(*config.duration)
    rate = spk.rate_wpm * (1 + rng.uniform(-config.rate_jitter, config.rate_jitter))
    if num_words is None:  # speech is the target minus ~0.5 s of leading/trailing pauses
        num_words = max(2, round((target - 0.5) * rate / 60 * WORDS_PER_NOMINAL_WORD))
    text = make_sentence(rng, num_words)
    while text in used:  # a speaker never repeats a sentence
        text = make_sentence(rng, num_words)
    pitch_hz = spk.pitch_hz * (1 + rng.uniform(-config.pitch_jitter, config.pitch_jitter))
    factor = spk.formant_factor * (1 + rng.uniform(-config.formant_jitter, config.formant_jitter))
    pitch_range = int(np.clip(spk.pitch_range + rng.integers(-config.pitch_range_jitter,
                                                             config.pitch_range_jitter + 1), 0, 100))
    request = SynthRequest(
        text=text,
        voice=f"{spk.accent}+{spk.variant}",
        rate_wpm=round(rate / factor),
        pitch=pitch_parameter(pitch_hz / factor, spk.variant, pitch_range),
        pitch_range=pitch_range,
        word_gap=spk.word_gap,
        seed=int(rng.integers(2**31)),
    )
    return _Plan(index, text, num_words, target, factor, request, rng)


def synthesize_speaker(spk: SpeakerProfile, num_utterances: int, config: SynthConfig) -> list[Utterance]:
    """Render ``num_utterances`` utterances of ``spk``, each with a sentence the speaker never repeats.

    Word counts are re-planned (up to ``MAX_LENGTH_ROUNDS`` rounds) for utterances whose length misses
    ``config.duration``, since espeak's real tempo depends on the words.
    """
    engine, used = get_engine(), set()
    plans = []
    for i in range(num_utterances):
        plans.append(_plan_utterance(config, spk, i, 0, used))
        used.add(plans[-1].text)
    speech: dict[int, np.ndarray] = {}
    for attempt in range(1, MAX_LENGTH_ROUNDS + 1):
        pending = [p for p in plans if p.index not in speech]
        for plan, raw in zip(pending, engine.synthesize([p.request for p in pending])):
            audio = shift_formants(raw, engine.sampling_rate, plan.formant_factor, config.sampling_rate)
            seconds = len(audio) / config.sampling_rate + 0.5
            fits = config.duration[0] <= seconds <= config.duration[1] or attempt == MAX_LENGTH_ROUNDS
            if fits or plan.num_words <= 2 and seconds < config.duration[0]:
                speech[plan.index] = audio
                continue
            used.discard(plan.text)
            words = max(2, round(plan.num_words * (plan.target_seconds - 0.5) / (seconds - 0.5)))
            plans[plan.index] = _plan_utterance(config, spk, plan.index, attempt, used, words)
            used.add(plans[plan.index].text)
    return [Utterance(f"{spk.id}-{p.index + 1:04d}", spk, p.text, degrade(speech[p.index], p.rng, config),
                      config.sampling_rate) for p in plans]


# ---------------------------------------------------------------------------------------------- trials
def make_trials(utt2spk: dict[str, str], rng: np.random.Generator, nontarget_per_target: float = 3.0,
                max_target_trials: int = 20000) -> list[Trial]:
    """Verification trials among ``utt2spk``'s utterances, sorted by (enroll, test).

    All same-speaker pairs (or ``max_target_trials`` of them) and ``nontarget_per_target`` times as many
    different-speaker pairs, drawn without replacement.

    :raises ValueError: if there cannot be both target and non-target trials.
    """
    utts = sorted(utt2spk)
    by_spk: dict[str, list[str]] = {}
    for u in utts:
        by_spk.setdefault(utt2spk[u], []).append(u)
    targets = [(a, b) for us in by_spk.values() for i, a in enumerate(us) for b in us[i + 1:]]
    if len(by_spk) < 2 or not targets:
        raise ValueError(f"trials need >= 2 speakers and one with >= 2 utterances; got {len(by_spk)} speakers, "
                         f"{len(utts)} utterances")
    if len(targets) > max_target_trials:
        targets = [targets[i] for i in sorted(rng.choice(len(targets), max_target_trials, replace=False))]
    total_pairs = len(utts) * (len(utts) - 1) // 2
    num_nontarget_pairs = total_pairs - sum(len(us) * (len(us) - 1) // 2 for us in by_spk.values())
    wanted = min(num_nontarget_pairs, round(nontarget_per_target * len(targets)))
    nontargets: set[tuple[str, str]] = set()
    if wanted > num_nontarget_pairs // 2:  # small corpus: enumerate instead of rejection sampling
        every = [(a, b) for i, a in enumerate(utts) for b in utts[i + 1:] if utt2spk[a] != utt2spk[b]]
        nontargets = {every[i] for i in rng.choice(len(every), wanted, replace=False)}
    while len(nontargets) < wanted:  # rejection sampling; the pair space is far larger than ``wanted``
        for i, j in rng.integers(len(utts), size=(2 * (wanted - len(nontargets)), 2)):
            a, b = sorted((utts[i], utts[j]))
            if utt2spk[a] != utt2spk[b] and len(nontargets) < wanted:
                nontargets.add((a, b))
    trials = [Trial(a, b, True) for a, b in targets] + [Trial(a, b, False) for a, b in nontargets]
    return sorted(trials, key=lambda t: (t.enroll, t.test))


# ---------------------------------------------------------------------------------------------- corpus
def _format_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def _write_wav(path: Path, samples: np.ndarray, sampling_rate: int) -> None:
    import soundfile

    with atomic_path(path) as tmp:
        soundfile.write(tmp, samples, sampling_rate, subtype="PCM_16", format="WAV")


def _render_speaker(job: tuple[SynthConfig, str, int, Path]) -> tuple[SpeakerProfile, list[tuple]]:
    """Synthesize one speaker and write its wav files: (profile, [(utt id, path, text, num samples)])."""
    config, part, index, out_dir = job
    spk = sample_speaker(config, part, index)
    rows = []
    for utt in synthesize_speaker(spk, config.utts_per_speaker, config):
        path = (out_dir / "wav" / spk.id / f"{utt.id}.wav").resolve()
        _write_wav(path, utt.samples, utt.sampling_rate)
        rows.append((utt.id, str(path), utt.text, len(utt.samples)))
    return spk, rows


def synthesize_part(config: SynthConfig, part: str, num_speakers: int, out_dir: Path,
                    num_jobs: int = 1) -> tuple[list, list]:
    """Synthesize and write the wav files of ``part``; return its Lhotse recordings and supervisions.

    :param num_jobs: worker processes, one speaker at a time each; the output does not depend on it.
    """
    import multiprocessing

    from lhotse import AudioSource, Recording, SupervisionSegment

    jobs = [(config, part, index, out_dir) for index in range(num_speakers)]
    # fork: workers inherit the pristine espeak engine; each still forks per speaker (see cimc.data.espeak).
    pool = multiprocessing.get_context("fork").Pool(num_jobs) if num_jobs > 1 else None
    results = pool.imap(_render_speaker, jobs) if pool else map(_render_speaker, jobs)
    recordings, supervisions, rate = [], [], config.sampling_rate
    try:
        for spk, rows in tqdm(results, total=len(jobs), desc=f"synthesize {part} speakers", unit="spk"):
            for utt_id, path, text, num_samples in rows:
                recordings.append(Recording(id=utt_id, sources=[AudioSource(type="file", channels=[0], source=path)],
                                            sampling_rate=rate, num_samples=num_samples,
                                            duration=num_samples / rate))
                supervisions.append(SupervisionSegment(
                    id=utt_id, recording_id=utt_id, start=0.0, duration=num_samples / rate, channel=0, text=text,
                    language="English", speaker=spk.id, gender=spk.gender,
                    custom={"voice": f"{spk.accent}+{spk.variant}", "formant_factor": spk.formant_factor,
                            "pitch_hz": spk.pitch_hz}))
    finally:
        if pool:
            pool.close()
            pool.join()
    return recordings, supervisions


def _speakers_tsv(config: SynthConfig) -> str:
    names = [f for f in SpeakerProfile.__dataclass_fields__ if f != "index"]
    rows = ["\t".join(names)]
    for part, count in (("train", config.num_speakers), ("test", config.num_test_speakers)):
        for index in range(count):
            profile = asdict(sample_speaker(config, part, index))
            rows.append("\t".join(str(profile[n]) for n in names))
    return "\n".join(rows) + "\n"


def synthesize_corpus(config: SynthConfig, out_dir: str | Path, num_jobs: int = 1) -> str:
    """Write the whole corpus (train part, test part, trials) under ``out_dir``; see the module docstring.

    :param num_jobs: parallel worker processes (speakers are independent, so the bytes do not change).
    :return: the summary table (speakers, utterances, hours, trials) that is also logged and saved.
    """
    from lhotse import RecordingSet, SupervisionSet

    from cimc.config import save_config
    from cimc.data.layout import write_data_layout

    out_dir = Path(out_dir)
    save_config(config, out_dir / "synth_config.yaml")
    rows = [["part", "speakers", "utterances", "hours", "mean dur (s)", "trials (target/nontarget)"]]
    parts = [("train", config.num_speakers), ("test", config.num_test_speakers)]
    for part, num_speakers in parts:
        if num_speakers == 0:
            continue
        recordings, supervisions = synthesize_part(config, part, num_speakers, out_dir, num_jobs)
        write_data_layout(out_dir, part, RecordingSet.from_recordings(recordings),
                          SupervisionSet.from_segments(supervisions))
        seconds = sum(r.duration for r in recordings)
        trial_cell = "-"
        if part == "test":
            trials = make_trials({s.id: s.speaker for s in supervisions}, np.random.default_rng([config.seed, 2]),
                                 config.nontarget_per_target, config.max_target_trials)
            write_trials(out_dir / "trials.txt", trials)
            num_target = sum(t.target for t in trials)
            trial_cell = f"{len(trials)} ({num_target}/{len(trials) - num_target})"
        rows.append([part, str(num_speakers), str(len(recordings)), f"{seconds / 3600:.3f}",
                     f"{seconds / len(recordings):.2f}", trial_cell])
    write_text_atomic(out_dir / "speakers.tsv", _speakers_tsv(config))
    summary = _format_table(rows)
    write_text_atomic(out_dir / "summary.txt", summary)
    logger.info("synthetic corpus written to %s (summary.txt, speakers.tsv, synth_config.yaml)", out_dir)
    return summary
