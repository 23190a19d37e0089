"""Diagnosing a detector over a whole split: where each box is lost, what each error type costs,
whether the anchors fit the boxes, and what other settings would gain.

- :mod:`.funnel` - the stage that lost each ground-truth box (the inspector's stages, refined);
- :mod:`.tide` - TIDE's error types and their dAP;
- :mod:`.anchor_fit` - best-anchor IoU per FPN level and size bucket, and a search for anchor
  sizes, aspect ratios and input size that fit the boxes;
- :mod:`.split` - running a checkpoint over a split once, keeping each image's stage outputs,
  and re-evaluating with other settings from them (what-if);
- :mod:`.report` - the whole diagnosis as JSON; :mod:`.charts` - its charts as PNG files.

Nothing here imports Qt.
"""
