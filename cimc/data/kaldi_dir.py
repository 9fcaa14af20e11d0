"""Stage 0 for any corpus: import a Kaldi data dir (wav.scp, utt2spk, optional segments) into the layout.

Every recipe reads the same manifests (:mod:`cimc.data.layout`), so another corpus needs only this
stage changed: ``cimc import-kaldi-dir --data-dir D --name train --output-dir data``.

wav.scp entries may be files (their header gives rate and length) or Kaldi pipes (``cmd |``), which
need ``reco2dur`` and ``--sampling-rate`` because decoding every pipe just to measure it is slow.
"""
from __future__ import annotations

import logging
from pathlib import Path

from cimc.data.layout import write_data_layout
from cimc.data.recordings import recordings_from_files
from cimc.data.trials import check_trials_known, read_trials, write_trials
from cimc.utils import name_some

logger = logging.getLogger(__name__)


def read_kaldi_map(path: Path, required: bool = True) -> dict[str, str]:
    """``key value...`` lines -> dict; a duplicate key or a line without value raises naming file:line."""
    if not path.is_file():
        if required:
            raise FileNotFoundError(f"Kaldi data dir file {path} does not exist")
        return {}
    mapping: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.strip().split(maxsplit=1)
        if len(fields) != 2:
            raise ValueError(f"{path}:{number}: expected 'key value', got {line!r}")
        if fields[0] in mapping:
            raise ValueError(f"{path}:{number}: duplicate key {fields[0]!r}")
        mapping[fields[0]] = fields[1]
    return mapping


def _pipe_recordings(pipes: dict[str, str], reco2dur: dict[str, str], sampling_rate: int | None, data_dir: Path):
    from lhotse import AudioSource, Recording
    from lhotse.utils import compute_num_samples

    if not pipes:
        return []
    lacking = sorted(set(pipes) - set(reco2dur))
    if lacking or sampling_rate is None:
        raise ValueError(
            f"{data_dir}/wav.scp has {len(pipes)} pipe entries (e.g. {next(iter(pipes))}); they need "
            f"--sampling-rate and a reco2dur file (missing for {len(lacking)}: {name_some(lacking)}); "
            "make it with Kaldi's utils/data/get_reco2dur.sh"
        )
    return [
        Recording(id=rid, sources=[AudioSource("command", [0], cmd.rstrip()[:-1].strip())],
                  sampling_rate=sampling_rate, num_samples=compute_num_samples(float(reco2dur[rid]), sampling_rate),
                  duration=float(reco2dur[rid]))
        for rid, cmd in pipes.items()
    ]


def load_recordings(data_dir: Path, sampling_rate: int | None = None, num_jobs: int = 1):
    """RecordingSet of wav.scp (unreadable/empty files are left out with a warning naming them)."""
    from lhotse import RecordingSet

    wav_scp = read_kaldi_map(data_dir / "wav.scp")
    pipes = {k: v for k, v in wav_scp.items() if v.rstrip().endswith("|")}
    files = [(k, v) for k, v in wav_scp.items() if k not in pipes]
    missing = [f"{k} ({v})" for k, v in files if not Path(v).is_file()]
    if missing:
        logger.warning("%s/wav.scp: %d of %d audio files do not exist and are left out: %s",
                       data_dir, len(missing), len(files), name_some(missing, sep="; "))
    file_recordings, _ = recordings_from_files([(k, v) for k, v in files if Path(v).is_file()], num_jobs,
                                               f"{data_dir.name}/wav.scp")
    if sampling_rate is not None:
        wrong = [r.id for r in file_recordings if r.sampling_rate != sampling_rate]
        if wrong:
            raise ValueError(f"{len(wrong)} recording(s) are not at --sampling-rate {sampling_rate}: {name_some(wrong)}")
    pipe_recordings = _pipe_recordings(pipes, read_kaldi_map(data_dir / "reco2dur", required=False), sampling_rate,
                                       data_dir)
    return RecordingSet.from_recordings(list(file_recordings) + pipe_recordings)


def load_supervisions(data_dir: Path, recordings):
    """One supervision per utterance of utt2spk (spanning its segment, or its whole recording)."""
    from lhotse import SupervisionSegment, SupervisionSet

    utt2spk = read_kaldi_map(data_dir / "utt2spk")
    segments = read_kaldi_map(data_dir / "segments", required=False)
    genders = read_kaldi_map(data_dir / "spk2gender", required=False)
    durations = {r.id: r.duration for r in recordings}  # RecordingSet lookups by id are O(N) scans
    if segments:
        spans = {}
        for utt, value in segments.items():
            fields = value.split()
            if len(fields) != 3:
                raise ValueError(f"{data_dir}/segments: expected 'utt recording start end' for {utt}, got {value!r}")
            spans[utt] = (fields[0], float(fields[1]), float(fields[2]))
    else:
        spans = {utt: (utt, 0.0, -1.0) for utt in utt2spk}
    no_speaker = sorted(set(spans) - set(utt2spk))
    if no_speaker:
        raise ValueError(f"{len(no_speaker)} utterance(s) have no line in {data_dir}/utt2spk: {name_some(no_speaker)}")
    no_audio = sorted(u for u, (rec, _, _) in spans.items() if rec not in durations)
    if no_audio:
        logger.warning("%s: %d of %d utterances have no usable recording and are left out: %s",
                       data_dir, len(no_audio), len(spans), name_some(no_audio))
    supervisions, bad = [], []
    for utt, (rec, start, end) in spans.items():
        if rec not in durations:
            continue
        total = durations[rec]
        end = total if end < 0 else end
        if not 0 <= start < end <= total + 0.01:
            bad.append(f"{utt} [{start}, {end}] of {rec} ({total:.2f} s)")
            continue
        speaker = utt2spk[utt]
        supervisions.append(SupervisionSegment(id=utt, recording_id=rec, start=start, duration=min(end, total) - start,
                                               channel=0, speaker=speaker, gender=genders.get(speaker)))
    if bad:
        raise ValueError(f"{len(bad)} segment(s) lie outside their recording: {name_some(bad, sep='; ')}")
    return SupervisionSet.from_segments(supervisions)


def import_kaldi_dir(data_dir: str | Path, name: str, output_dir: str | Path, sampling_rate: int | None = None,
                     trials: str | Path | None = None, num_jobs: int = 1):
    """Write part ``name`` of the Stage 0 layout from a Kaldi data dir; return its CutSet.

    :param trials: optional Kaldi trials file over this part's utterance ids, checked and copied to
        ``output_dir/trials.txt``.
    """
    data_dir, output_dir = Path(data_dir), Path(output_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"Kaldi data dir {data_dir} does not exist")
    recordings = load_recordings(data_dir, sampling_rate, num_jobs)
    supervisions = load_supervisions(data_dir, recordings)
    if len(supervisions) == 0:
        raise ValueError(f"no usable utterance in {data_dir}")
    cuts = write_data_layout(output_dir, name, recordings, supervisions)
    if trials is not None:
        trial_list = read_trials(trials)
        check_trials_known(trial_list, cuts.ids, f"{data_dir} (part {name})")
        write_trials(output_dir / "trials.txt", trial_list)
        logger.info("trials: %d from %s -> %s", len(trial_list), trials, output_dir / "trials.txt")
    return cuts
