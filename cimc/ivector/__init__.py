"""Stages 2-3: the i-vector system (Kaldi egs/voxceleb/v1 in PyTorch, CPU or GPU).

Import order: ``config`` (dataclasses) <- ``frontend`` (stored MFCC -> deltas, CMN, VAD) <- ``ubm``
(diagonal GMM, EM, frame posteriors) <- ``full_ubm`` (full-covariance refinement) <- ``extractor``
(Baum-Welch statistics, T-matrix EM, batched extraction) <- ``jobs`` (run.pl job arrays) <-
``pipeline`` (train-ubm, train-extractor) <- ``extract`` (i-vectors to .npy/.ark/cuts) ; ``backend``
(LDA, PLDA) <- ``score`` (the baseline table) ; ``cli`` (``cimc ivector ...``).
"""
