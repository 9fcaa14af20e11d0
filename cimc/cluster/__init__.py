"""cimc.cluster: clustering methods behind one interface, their registry, labels I/O and ablations.

Import order matters only for the registry: :mod:`cimc.cluster.base` defines it, then each module
that registers methods is imported so that ``CLUSTERERS`` is complete once ``cimc.cluster`` is:
:mod:`cimc.cluster.baselines` (kmeans, minibatch-kmeans, ahc, spectral, gmm, birch) and
:mod:`cimc.cluster.cimc` (cimc, imsat, imsat-mixup). Heavy libraries (torch, sklearn estimators)
are imported inside the methods, so this stays cheap.
"""
from cimc.cluster import base  # noqa: F401  (the registry)
from cimc.cluster import baselines  # noqa: F401  (registers the classical methods)
from cimc.cluster import cimc  # noqa: F401  (registers cimc, imsat, imsat-mixup)
