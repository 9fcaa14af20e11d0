"""cimc.sv: stages 6-7, ECAPA-TDNN speaker embeddings trained on (pseudo-)labels, and their scoring.

Import order (each module imports only those above it): ``config`` (dataclasses) <- ``model``
(ECAPA-TDNN), ``heads`` (AAM / OC-softmax), ``augment`` <- ``data`` (crops, on-the-fly features) <-
``checkpoint`` (assembly, DDP environment, checkpoints) <- ``train`` <- ``extract``, ``score`` <- ``cli``.
``toy`` builds a tiny labelled corpus for tests and benchmarks.
"""
