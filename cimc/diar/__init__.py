"""cimc.diar: speaker diarization recipes (egs/mini_diar, egs/voxconverse) that reuse the clustering stage.

Modules, from the bottom up (each imports only those above it):

- ``rttm``: :class:`~cimc.diar.rttm.Turn`, RTTM read/write, pyannote and Lhotse conversions.
- ``segments``: speech regions (VAD or reference), uniform sub-segments, labelled sub-segments -> turns.
- ``scoring``: DER (missed, false alarm, confusion) and JER with pyannote.metrics, md-eval collar.
- ``plot``: PNG timeline, reference above hypothesis.
- ``conversations``: synthetic multi-speaker recordings from single-speaker cuts.
- ``voxconverse``: VoxConverse manifests through lhotse.recipes.prepare_voxconverse.
- ``pipeline``: configs, speech activity, sub-segment cuts, per-recording clustering via cimc.cluster.
- ``tuning``: one clustering parameter tuned for DER on a development set.
- ``stages``: the file-level steps behind ``cimc diar ...`` (``cli``).
"""
