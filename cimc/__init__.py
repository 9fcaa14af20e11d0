"""cimc: Kaldi-style recipes for self-supervised speaker verification with CIMC."""
__version__ = "0.1.0"
