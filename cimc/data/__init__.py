"""Stage 0: corpora into the shared data layout (Lhotse manifests, Kaldi data dir, trials).

Modules, lowest first: ``trials`` (Kaldi trials I/O), ``recordings`` (audio headers, naming bad files),
``layout`` (the writer every corpus uses), then one module per source: ``voxceleb``, ``kaldi_dir``,
``synth`` (the espeak-ng corpus), and ``convert`` (m4a -> wav). ``cli`` / ``synth_cli`` hold the commands.
"""
