"""Stage 0 for the paper's setting: VoxCeleb2-dev for training, VoxCeleb1-O for testing.

Expected folders (the layout the official archives unpack to)::

    VOXCELEB2/dev/aac/id00012/21Uxsk56VDQ/00001.m4a   (or dev/wav/.../00001.wav after `cimc convert-m4a`)
    VOXCELEB1/wav/id10270/x6uYqmx31kE/00001.wav       (the test speakers id10270..id10309 at least)
    VOXCELEB1/vox1_meta.csv, VOXCELEB2/vox2_meta.csv  (optional: speaker gender)

Utterance ids are Lhotse's: ``id10270/x6uYqmx31kE/00001.wav`` -> ``id10270-x6uYqmx31kE-00001``; the
speaker id comes first, so Kaldi's sort order of utt2spk and spk2utt agree. The VoxCeleb1-O lists
(``1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav``) are mapped to these ids and
written as Kaldi trials (``enroll test target|nontarget``).

Why not ``lhotse.recipes.prepare_voxceleb`` itself: it puts VoxCeleb1-dev and VoxCeleb2-test into
"train", downloads the trial list into the current directory on every call (so it fails offline),
knows only the cleaned list, and scans only ``*.m4a``. We reuse its download helpers and trial URL
and keep its utterance ids, so manifests stay interchangeable with Lhotse's.

VoxCeleb2 ships AAC in m4a. Lhotse decodes m4a only through an FFmpeg-based backend (torchaudio or
torchcodec built with FFmpeg, or audioread with the ffmpeg binary), none of which cimc installs;
decoding 1.09 M files on every epoch is also slow. Convert once to 16 kHz wav with
``cimc convert-m4a`` (Kaldi and WeSpeaker do the same) and point ``--voxceleb2`` at the same folder.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from cimc.data.layout import write_data_layout
from cimc.data.recordings import recordings_from_files
from cimc.data.trials import Trial, check_trials_known, write_trials
from cimc.utils import name_some

logger = logging.getLogger(__name__)

TRIAL_LISTS = ("original", "cleaned")
# Official file names; "cleaned" is the list Lhotse downloads (VOXCELEB1_TRIALS_URL, an OpenSLR mirror).
TRIALS_FILENAMES = {"original": "veri_test.txt", "cleaned": "veri_test2.txt"}
ORIGINAL_TRIALS_URL = "https://www.robots.ox.ac.uk/~vgg/data/voxceleb/meta/veri_test.txt"
EXPECTED_NUM_TRIALS = {"original": 37720, "cleaned": 37611}


@dataclass(frozen=True)
class OfficialTrial:
    """One line of an official VoxCeleb trial list: ``1 id10270/x/00001.wav id10270/y/00002.wav``."""

    target: bool
    enroll_path: str
    test_path: str


def utterance_id(relative_path: str) -> str:
    """``id10270/x6uYqmx31kE/00001.wav`` -> ``id10270-x6uYqmx31kE-00001`` (speaker/session/clip)."""
    parts = Path(relative_path).with_suffix("").parts[-3:]
    if len(parts) != 3:
        raise ValueError(f"{relative_path!r} is not of the form speaker/session/clip.wav")
    return "-".join(parts)


def read_official_trials(path: str | Path) -> list[OfficialTrial]:
    """Parse a VoxCeleb trial list; a malformed line raises ``ValueError`` naming the file and line."""
    path = Path(path)
    trials = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3 or fields[0] not in {"0", "1"}:
            raise ValueError(f"{path}:{number}: expected '1|0 spk/session/clip.wav spk/session/clip.wav', got {line!r}")
        trials.append(OfficialTrial(fields[0] == "1", fields[1], fields[2]))
    if not trials:
        raise ValueError(f"trial list {path} is empty")
    return trials


def locate_trials(kind: str, trials_file: str | Path | None, voxceleb1: Path, output_dir: Path) -> Path:
    """The official ``kind`` list: ``trials_file``, else a copy in the corpus or output folder, else download."""
    if kind not in TRIAL_LISTS:
        raise ValueError(f"trial list {kind!r} is not one of {TRIAL_LISTS}")
    if trials_file is not None:
        if not Path(trials_file).is_file():
            raise FileNotFoundError(f"trials file {trials_file} does not exist")
        return Path(trials_file)
    name = TRIALS_FILENAMES[kind]
    for candidate in (voxceleb1 / name, voxceleb1 / "meta" / name, output_dir / name):
        if candidate.is_file():
            return candidate
    from lhotse.recipes.voxceleb import VOXCELEB1_TRIALS_URL
    from lhotse.utils import resumable_download

    url = ORIGINAL_TRIALS_URL if kind == "original" else VOXCELEB1_TRIALS_URL
    target = output_dir / name
    logger.info("downloading the %s VoxCeleb1-O list from %s", kind, url)
    try:
        resumable_download(url, filename=target)
    except Exception as error:
        raise FileNotFoundError(
            f"no {kind} VoxCeleb1-O list ({name}) in {voxceleb1} or {output_dir}, and downloading {url} failed "
            f"({error}); pass a local copy with --trials-file"
        ) from error
    return target


def read_genders(meta_csv: Path) -> dict[str, str]:
    """Speaker -> 'm'/'f' from vox1_meta.csv (tab-separated) or vox2_meta.csv (comma); {} if absent."""
    if not meta_csv.is_file():
        return {}
    genders = {}
    for line in meta_csv.read_text().splitlines()[1:]:
        fields = [f.strip() for f in (line.split("\t") if "\t" in line else line.split(","))]
        gender = next((f.lower() for f in fields[1:] if f.lower() in {"m", "f"}), None)
        if fields and fields[0].startswith("id") and gender:
            genders[fields[0]] = gender
    return genders


def voxceleb2_dev_files(voxceleb2: Path) -> list[tuple[str, Path]]:
    """(utterance id, path) for VoxCeleb2-dev: ``dev/wav`` when converted, else ``dev/aac``."""
    dev = voxceleb2 / "dev"
    for sub, pattern in (("wav", "*/*/*.wav"), ("aac", "*/*/*.m4a")):
        files = sorted((dev / sub).glob(pattern)) if (dev / sub).is_dir() else []
        if files:
            logger.info("VoxCeleb2-dev: %d %s files under %s", len(files), pattern[-3:], dev / sub)
            return [(utterance_id(str(f.relative_to(dev / sub))), f) for f in files]
    raise FileNotFoundError(
        f"no VoxCeleb2-dev audio: expected {dev}/aac/idXXXXX/SESSION/NNNNN.m4a or {dev}/wav/.../NNNNN.wav"
    )


def voxceleb1_test_files(voxceleb1: Path, speakers: set[str]) -> list[tuple[str, Path]]:
    """(utterance id, path) of every wav of the given (test) speakers under ``VOXCELEB1/wav``."""
    wav = voxceleb1 / "wav"
    if not wav.is_dir():
        raise FileNotFoundError(f"no VoxCeleb1 audio folder {wav} (expected wav/idXXXXX/SESSION/NNNNN.wav)")
    missing = sorted(s for s in speakers if not (wav / s).is_dir())
    if missing:
        logger.warning("%d test speaker folder(s) named in the trials are missing under %s: %s",
                       len(missing), wav, name_some(missing))
    files = sorted(f for s in sorted(speakers) for f in (wav / s).glob("*/*.wav"))
    return [(utterance_id(str(f.relative_to(wav))), f) for f in files]


def _supervisions(recordings, genders: dict[str, str]):
    from lhotse import SupervisionSegment, SupervisionSet

    return SupervisionSet.from_segments(
        SupervisionSegment(id=r.id, recording_id=r.id, start=0.0, duration=r.duration, channel=0,
                           speaker=r.id.split("-", 1)[0], gender=genders.get(r.id.split("-", 1)[0]))
        for r in recordings
    )


def map_trials(official: list[OfficialTrial], known_ids, source: str, skip_unknown: bool = False) -> list[Trial]:
    """Official trials -> Kaldi trials on utterance ids; unknown utterances raise (or are skipped, loudly)."""
    trials = [Trial(utterance_id(t.enroll_path), utterance_id(t.test_path), t.target) for t in official]
    known = set(known_ids)
    if skip_unknown:
        kept = [t for t in trials if t.enroll in known and t.test in known]
        if len(kept) < len(trials):
            missing = sorted({u for t in trials for u in (t.enroll, t.test)} - known)
            logger.warning("skipping %d of %d trials that name %d utterance(s) missing from %s: %s",
                           len(trials) - len(kept), len(trials), len(missing), source, name_some(missing))
        if not kept:
            raise ValueError(f"no trial is left after skipping those with utterances missing from {source}")
        return kept
    check_trials_known(trials, known, source)
    return trials


def prepare_voxceleb(
    voxceleb1: str | Path, voxceleb2: str | Path, output_dir: str | Path, trials: str = "cleaned",
    trials_file: str | Path | None = None, num_jobs: int = 1, skip_unknown_trials: bool = False,
) -> dict:
    """Write the Stage 0 layout (see :mod:`cimc.data.layout`) for VoxCeleb2-dev / VoxCeleb1-O.

    :param trials: ``cleaned`` (37,611 trials) or ``original`` (37,720).
    :param trials_file: a local copy of that list (needed offline unless it sits in the corpus folder).
    :param skip_unknown_trials: drop trials naming missing utterances (with a warning) instead of failing.
    :return: {"train": CutSet, "test": CutSet, "trials": list[Trial]}.
    """
    voxceleb1, voxceleb2, output_dir = Path(voxceleb1), Path(voxceleb2), Path(output_dir)
    for name, folder in (("--voxceleb1", voxceleb1), ("--voxceleb2", voxceleb2)):
        if not folder.is_dir():
            raise FileNotFoundError(f"{name} folder {folder} does not exist")
    output_dir.mkdir(parents=True, exist_ok=True)
    trials_path = locate_trials(trials, trials_file, voxceleb1, output_dir)
    official = read_official_trials(trials_path)
    if len(official) != EXPECTED_NUM_TRIALS[trials]:
        logger.warning("%s holds %d trials; the full %s VoxCeleb1-O list has %d",
                       trials_path, len(official), trials, EXPECTED_NUM_TRIALS[trials])
    test_speakers = {utterance_id(p).split("-", 1)[0] for t in official for p in (t.enroll_path, t.test_path)}

    train_files = voxceleb2_dev_files(voxceleb2)
    train_recordings, _ = recordings_from_files(train_files, num_jobs, "VoxCeleb2-dev")
    if len(train_recordings) == 0:
        m4a = train_files[0][1].suffix == ".m4a"
        raise ValueError(f"none of the {len(train_files)} VoxCeleb2-dev files could be read"
                         + ("; m4a needs an FFmpeg-based decoder: convert once with `cimc convert-m4a`" if m4a else ""))
    test_recordings, _ = recordings_from_files(voxceleb1_test_files(voxceleb1, test_speakers), num_jobs, "VoxCeleb1-test")
    if len(test_recordings) == 0:
        raise ValueError(f"no readable VoxCeleb1 test audio under {voxceleb1 / 'wav'} for the trial speakers")
    train = write_data_layout(output_dir, "train", train_recordings,
                              _supervisions(train_recordings, read_genders(voxceleb2 / "vox2_meta.csv")))
    test = write_data_layout(output_dir, "test", test_recordings,
                             _supervisions(test_recordings, read_genders(voxceleb1 / "vox1_meta.csv")))
    kaldi_trials = map_trials(official, test.ids, f"the VoxCeleb1 test set under {voxceleb1}", skip_unknown_trials)
    write_trials(output_dir / "trials.txt", kaldi_trials)
    num_target = sum(t.target for t in kaldi_trials)
    logger.info("trials: %d (%d target, %d nontarget) from %s -> %s", len(kaldi_trials), num_target,
                len(kaldi_trials) - num_target, trials_path, output_dir / "trials.txt")
    return {"train": train, "test": test, "trials": kaldi_trials}
