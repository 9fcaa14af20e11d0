"""cimc.diar.pipeline and stages: speech activity, sub-segment cuts, per-recording clustering, CLI."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from sklearn.cluster import AgglomerativeClustering, KMeans

from cimc.cli import cli
from cimc.cluster.base import CLUSTERERS, Clusterer, register_clusterer
from cimc.diar.pipeline import (ClusteringConfig, SpeechConfig, SubsegmentConfig, cluster_recording, diarize,
                                parse_segment_id, prepare_embeddings, speech_activity, subsegment_cuts)
from cimc.diar.rttm import Turn, read_rttm, recording_cuts, supervisions_from_turns, write_rttm
from cimc.diar.scoring import score_diarization
from cimc.diar.segments import read_segments, segment_id
from cimc.vectors import save_vectors

@dataclasses.dataclass
class _ThresholdConfig:
    distance_threshold: float = 1.0


if "test-kmeans" not in CLUSTERERS:
    @register_clusterer("test-kmeans")
    class _KMeans(Clusterer):
        """k-means that cannot estimate the count (as k-means and CIMC)."""

        def fit_predict(self, X, n_clusters=None):
            if n_clusters is None:
                raise ValueError("test-kmeans needs n_clusters")
            return KMeans(n_clusters, n_init=4, random_state=0).fit_predict(X)

    @register_clusterer("test-ahc", config=_ThresholdConfig)
    class _Ahc(Clusterer):
        """Cosine average-linkage AHC cut at a distance (1: orthogonal blobs): estimates the count."""

        def fit_predict(self, X, n_clusters=None):
            kwargs = ({"n_clusters": n_clusters} if n_clusters else
                      {"n_clusters": None, "distance_threshold": self.config.distance_threshold})
            return AgglomerativeClustering(metric="cosine", linkage="average", **kwargs).fit_predict(X)


def blob_embeddings(reference, rng, dim=16):
    """Sub-segments of every reference turn, embedded near a random direction per speaker."""
    centres = {}
    ids, rows = [], []
    for turn in reference:
        centre = centres.setdefault(turn.speaker, rng.standard_normal(dim) * 3)
        start = turn.start
        while start + 1.5 <= turn.end + 1e-9:
            ids.append(segment_id(turn.recording_id, start, start + 1.5))
            rows.append(centre + rng.standard_normal(dim) * 0.3)
            start += 0.75
    return ids, np.array(rows, dtype=np.float32)


REFERENCE = [Turn("a", 0.0, 6.0, "x"), Turn("a", 6.0, 4.5, "y"), Turn("a", 10.5, 6.0, "x"),
             Turn("b", 1.0, 6.0, "u"), Turn("b", 7.0, 6.0, "v"), Turn("b", 13.0, 6.0, "w")]


@pytest.mark.parametrize("method, num_speakers", [("test-ahc", "estimate"), ("test-kmeans", "estimate"),
                                                  ("test-kmeans", "oracle")])
def test_diarize_recovers_blob_speakers(method, num_speakers):
    ids, vectors = blob_embeddings(REFERENCE, np.random.default_rng(0))
    config = ClusteringConfig(num_speakers=num_speakers, count_method="test-ahc")
    by_rec = {"a": REFERENCE[:3], "b": REFERENCE[3:]}
    turns, labels = diarize(ids, vectors, method, config, by_rec)
    assert len(labels) == len(ids)
    assert {r: len({t.speaker for t in turns if t.recording_id == r}) for r in by_rec} == {"a": 2, "b": 3}
    total, _ = score_diarization(by_rec, {r: [t for t in turns if t.recording_id == r] for r in by_rec}, collar=0.25)
    assert total.der < 1.0


def test_cluster_recording_needs_a_counter_or_reference():
    X = np.random.default_rng(1).standard_normal((6, 4))
    method = CLUSTERERS["test-kmeans"].cls()
    with pytest.raises(ValueError, match="needs n_clusters"):
        cluster_recording(X, method, ClusteringConfig(), counter=None)
    with pytest.raises(ValueError, match="oracle needs the reference"):
        cluster_recording(X, method, ClusteringConfig(num_speakers="oracle"))
    assert cluster_recording(X[:1], method, ClusteringConfig()).tolist() == [0]


def test_prepare_embeddings_centres_and_normalises():
    X = np.array([[3.0, 1.0], [5.0, 1.0]])
    assert prepare_embeddings(X, "recording").tolist() == [[-1.0, 0.0], [1.0, 0.0]]
    assert np.allclose(np.linalg.norm(prepare_embeddings(X, "none"), axis=1), 1.0)


def test_segment_ids_round_trip():
    assert parse_segment_id(segment_id("rec-1", 1.25, 2.75)) == ("rec-1", 1.25, 2.75)
    with pytest.raises(ValueError, match="not a sub-segment id"):
        parse_segment_id("rec")


@pytest.fixture
def recordings(tmp_path):
    """Two 20 s recordings: a tone where the reference has speech, faint noise elsewhere."""
    from lhotse import Recording, RecordingSet

    rate, recs = 16000, []
    rng = np.random.default_rng(0)
    for rec in ("a", "b"):
        audio = 1e-3 * rng.standard_normal(20 * rate)
        for turn in REFERENCE:
            if turn.recording_id == rec:
                t = np.arange(int(turn.start * rate), int(turn.end * rate))
                audio[t] += 0.3 * np.sin(2 * np.pi * 200 * t / rate)
        sf.write(tmp_path / f"{rec}.wav", audio.astype(np.float32), rate)
        recs.append(Recording.from_file(tmp_path / f"{rec}.wav", recording_id=rec))
    cuts = recording_cuts(RecordingSet.from_recordings(recs), supervisions_from_turns(REFERENCE))
    cuts.to_file(tmp_path / "cuts.jsonl.gz")
    write_rttm(REFERENCE, tmp_path / "ref.rttm")
    return cuts


def test_reference_speech_and_subsegment_cuts(recordings):
    regions = speech_activity(recordings, SpeechConfig(source="reference"))
    assert regions == {"a": [(0.0, 16.5)], "b": [(1.0, 19.0)]}
    segments = {rec: [(segment_id(rec, s, e), s, e) for s, e in spans] for rec, spans in regions.items()}
    pieces = subsegment_cuts(recordings, segments, SubsegmentConfig(window=1.5, shift=0.75))
    first = pieces[0]
    assert first.id == "a-00000000-00001500" and first.duration == pytest.approx(1.5)
    assert first.load_audio().shape == (1, 24000) and first.supervisions == []
    assert len(pieces) == 21 + 23  # ceil((16.5 - 1.5) / 0.75) + 1 and (18 - 1.5) / 0.75 + 1


def test_cli_stages_run_end_to_end(recordings, tmp_path):
    # speech-activity (reference) -> subsegment -> (stand-in embeddings) -> cluster -> score
    runner = CliRunner()
    conf = tmp_path / "diar.yaml"
    conf.write_text("speech: {source: reference}\nclustering: {num_speakers: oracle}\n")
    args = ["diar", "speech-activity", "--cuts", str(tmp_path / "cuts.jsonl.gz"), "--config", str(conf),
            "--output", str(tmp_path / "speech/segments")]
    assert runner.invoke(cli, args, catch_exceptions=False).exit_code == 0
    assert read_segments(tmp_path / "speech/segments")["a"] == [("a-00000000-00016500", 0.0, 16.5)]
    args = ["diar", "subsegment", "--cuts", str(tmp_path / "cuts.jsonl.gz"), "--segments",
            str(tmp_path / "speech/segments"), "--config", str(conf), "--output", str(tmp_path / "sub.jsonl.gz")]
    assert runner.invoke(cli, args, catch_exceptions=False).exit_code == 0
    from lhotse import CutSet

    sub_ids = list(CutSet.from_file(tmp_path / "sub.jsonl.gz").ids)
    # stand-in embeddings: the speaker speaking in the middle of each sub-segment
    rng, centres, rows = np.random.default_rng(0), {}, []
    for seg in sub_ids:
        rec, start, end = parse_segment_id(seg)
        middle = (start + end) / 2
        speaker = next(t.speaker for t in REFERENCE if t.recording_id == rec and t.start <= middle <= t.end)
        rows.append(centres.setdefault(speaker, rng.standard_normal(8) * 3) + 0.2 * rng.standard_normal(8))
    save_vectors(tmp_path / "emb", sub_ids, np.array(rows, np.float32))
    args = ["diar", "cluster", "--embeddings", str(tmp_path / "emb"), "--method", "test-kmeans", "--config", str(conf),
            "--output-dir", str(tmp_path / "kmeans"), "--ref-rttm", str(tmp_path / "ref.rttm")]
    assert runner.invoke(cli, args, catch_exceptions=False).exit_code == 0
    assert (tmp_path / "kmeans/config.yaml").is_file() and len(read_rttm(tmp_path / "kmeans/rttm")) >= 5
    args = ["diar", "score", "--ref", str(tmp_path / "ref.rttm"), "--hyp", f"kmeans={tmp_path / 'kmeans/rttm'}",
            "--hyp", f"oracle={tmp_path / 'ref.rttm'}", "--output-dir", str(tmp_path / "results")]
    result = runner.invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0
    assert "| oracle | with | 0.00 | 0.00 | 0.00 | 0.00 | 0.00 |" in result.stdout
    kmeans_der = float(result.stdout.split("| kmeans | with | ")[1].split(" |")[0])
    assert kmeans_der < 5.0  # boundaries are off by at most half a shift, inside or near the collar
    assert (tmp_path / "results/timeline_kmeans.png").is_file()


def test_energy_vad_speech_activity(recordings, tmp_path):
    # With stage-1 features (energy VAD), the speech regions match the tones to within a few frames.
    from cimc.features.config import FeaturePipelineConfig

    pytest.importorskip("cimc.features.compute")
    runner = CliRunner()
    conf = tmp_path / "mfcc.yaml"
    from cimc.config import save_config

    save_config(FeaturePipelineConfig(), conf)
    args = ["compute-feats", "--config", str(conf), "--cuts", str(tmp_path / "cuts.jsonl.gz"),
            "--output-dir", str(tmp_path / "feats"), "--name", "rec", "--nj", "1"]
    result = runner.invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    from lhotse import CutSet

    cuts = CutSet.from_file(tmp_path / "feats/rec_cuts.jsonl.gz").to_eager()
    regions = speech_activity(cuts, SpeechConfig(source="vad"))
    assert [(round(s, 1), round(e, 1)) for s, e in regions["a"]] == [(0.0, 16.5)]
    assert [(round(s, 1), round(e, 1)) for s, e in regions["b"]] == [(1.0, 19.0)]
    segments = {rec: [(segment_id(rec, s, e), s, e) for s, e in spans] for rec, spans in regions.items()}
    pieces = subsegment_cuts(cuts, segments, SubsegmentConfig())
    assert pieces[0].has_features and pieces[0].load_features().shape[0] == pytest.approx(150, abs=2)


def test_tune_picks_the_threshold_with_lowest_der(tmp_path):
    from cimc.diar.tuning import tune_parameter

    ids, vectors = blob_embeddings(REFERENCE, np.random.default_rng(2))
    by_rec = {"a": REFERENCE[:3], "b": REFERENCE[3:]}
    best, trials = tune_parameter(ids, vectors, "test-ahc", ClusteringConfig(), by_rec, "distance_threshold",
                                  [0.01, 0.5, 1.99])
    assert best == 0.5
    ders = {value: der for value, der, _ in trials}
    assert ders[0.5] < 1.0 < min(ders[0.01], ders[1.99])
    speakers = {value: n for value, _, n in trials}
    assert speakers[1.99] == 1.0 and speakers[0.5] == 2.5 and speakers[0.01] > 10  # all merged; 2 and 3; none
    save_vectors(tmp_path / "emb", ids, vectors)
    write_rttm(REFERENCE, tmp_path / "ref.rttm")
    args = ["diar", "tune", "--embeddings", str(tmp_path / "emb"), "--ref-rttm", str(tmp_path / "ref.rttm"),
            "--method", "test-ahc", "--values", "0.01,0.5,1.99", "--output-dir", str(tmp_path / "tune")]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.stdout.strip() == "clustering.methods.test-ahc.distance_threshold=0.5"
    assert (tmp_path / "tune/best_override.txt").read_text().strip() == result.stdout.strip()


def speaker_blobs(num_speakers, rng, dim=32, noise=0.35):
    """Sub-segment embeddings of one recording: unequal turns of 5-60 sub-segments per speaker."""
    centres = rng.standard_normal((num_speakers, dim))
    sizes = rng.integers(5, 60, num_speakers)
    X = np.concatenate([c / np.linalg.norm(c) + noise / np.sqrt(dim) * rng.standard_normal((n, dim))
                        for c, n in zip(centres, sizes)])
    return X, np.repeat(np.arange(num_speakers), sizes)


@pytest.mark.parametrize("num_speakers", [2, 3, 4, 6])
def test_speaker_counting_on_embedding_blobs(num_speakers):
    # The registry's spectral (eigengap) and AHC (distance threshold) estimate the count per recording;
    # a method that cannot estimate (here k-means) gets spectral's count through cluster_recording.
    from sklearn.metrics import adjusted_rand_score

    X, truth = speaker_blobs(num_speakers, np.random.default_rng(num_speakers))
    config = ClusteringConfig(methods={"ahc": {"linkage": "average", "metric": "cosine", "distance_threshold": 0.7},
                                       "kmeans": {"n_init": 10}})
    from cimc.diar.pipeline import make_method

    counter = make_method("spectral", config)
    for name in ("spectral", "ahc", "kmeans"):
        labels = cluster_recording(X, make_method(name, config), config, counter=counter)
        assert len(np.unique(labels)) == num_speakers, name
        assert adjusted_rand_score(truth, labels) > 0.95, name


def test_subsegment_cuts_feed_the_ecapa_extractor(recordings):
    # The ECAPA route of stage 2 (`cimc sv extract`) embeds sub-segment cuts from their audio: one
    # (D,) embedding per sub-segment, in order, each from its own stretch of the recording.
    import torch

    from cimc.sv.config import FeatureConfig
    from cimc.sv.extract import extract_embeddings
    from cimc.sv.model import EcapaTdnn

    torch.manual_seed(0)
    segments = {"a": [("a-x", 0.0, 3.0)], "b": [("b-x", 1.0, 4.0)]}
    pieces = list(subsegment_cuts(recordings, segments, SubsegmentConfig(window=1.5, shift=1.5)))
    encoder = EcapaTdnn(feat_dim=40, channels=16, embed_dim=8, scale=4, se_bottleneck=8, attention_channels=8)
    ids, vectors = extract_embeddings(encoder, FeatureConfig(), pieces)
    assert ids == ["a-00000000-00001500", "a-00001500-00003000", "b-00001000-00002500", "b-00002500-00004000"]
    assert vectors.shape == (4, 8) and np.isfinite(vectors).all()
    # each sub-segment cut is exactly its stretch of the recording
    from lhotse import MonoCut

    rec = recordings["b"].recording
    direct = MonoCut(id="direct", start=2.5, duration=1.5, channel=0, recording=rec)
    _, expected = extract_embeddings(encoder, FeatureConfig(), [direct])
    assert np.allclose(vectors[3], expected[0], atol=1e-5)
