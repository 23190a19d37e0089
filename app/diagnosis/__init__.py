"""The Diagnose tab: a checkpoint over a split, its stage funnel, TIDE's errors, the anchors' fit
and a suggested preset, and what-if re-evaluations (see :mod:`engine.diagnosis`)."""
