"""cimc.metrics: speaker-verification metrics (:mod:`.verification`: EER, minDCF, DET) and clustering
metrics (:mod:`.clustering`: the paper's Table I columns, exact and fast at 1M labels)."""
