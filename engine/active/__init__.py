"""The model helps choose the labeling work: which unlabeled images to label next
(:mod:`engine.active.ranking`) and which existing labels look wrong (:mod:`engine.active.review`).
Neither imports Qt; the Label tab and ``frcnn rank`` / ``frcnn review`` call the same functions."""
