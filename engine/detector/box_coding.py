"""Box coding: boxes as offsets (dx, dy, dw, dh) from reference boxes, and back.

For a reference box with centre (xa, ya), width wa and height ha, and a target box
(x, y, w, h), the code is (R-CNN, Girshick et al. 2014)::

    dx = wx * (x - xa) / wa      dy = wy * (y - ya) / ha
    dw = ww * log(w / wa)        dh = wh * log(h / ha)

The RPN uses weights (1, 1, 1, 1) against anchors; the box head (10, 10, 5, 5) against
proposals. Decoding clamps dw and dh at log(1000 / 16) so a wild prediction cannot overflow
``exp``. All boxes are ``(x0, y0, x1, y1)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

DEFAULT_CLAMP = math.log(1000.0 / 16)


@dataclass(frozen=True)
class BoxCoder:
    weights: tuple[float, float, float, float]
    clamp: float = DEFAULT_CLAMP

    def encode(self, target_boxes: torch.Tensor, reference_boxes: torch.Tensor) -> torch.Tensor:
        """Codes of ``target_boxes`` (K, 4) relative to ``reference_boxes`` (K, 4) -> (K, 4)."""
        wx, wy, ww, wh = self.weights
        ref_x0, ref_y0, ref_x1, ref_y1 = reference_boxes.unsqueeze(2).unbind(1)
        tgt_x0, tgt_y0, tgt_x1, tgt_y1 = target_boxes.unsqueeze(2).unbind(1)

        ref_w = ref_x1 - ref_x0
        ref_h = ref_y1 - ref_y0
        ref_cx = ref_x0 + 0.5 * ref_w
        ref_cy = ref_y0 + 0.5 * ref_h
        tgt_w = tgt_x1 - tgt_x0
        tgt_h = tgt_y1 - tgt_y0
        tgt_cx = tgt_x0 + 0.5 * tgt_w
        tgt_cy = tgt_y0 + 0.5 * tgt_h

        dx = wx * (tgt_cx - ref_cx) / ref_w
        dy = wy * (tgt_cy - ref_cy) / ref_h
        dw = ww * torch.log(tgt_w / ref_w)
        dh = wh * torch.log(tgt_h / ref_h)
        return torch.cat((dx, dy, dw, dh), dim=1)

    def decode(self, codes: torch.Tensor, reference_boxes: torch.Tensor) -> torch.Tensor:
        """Boxes from codes.

        ``codes`` (K, 4 * C) holds C codes per reference box (C = 1 for the RPN, one per class
        for the box head); ``reference_boxes`` is (K, 4). Returns (K, C, 4).
        """
        reference_boxes = reference_boxes.to(codes.dtype)
        ref_w = reference_boxes[:, 2] - reference_boxes[:, 0]
        ref_h = reference_boxes[:, 3] - reference_boxes[:, 1]
        ref_cx = reference_boxes[:, 0] + 0.5 * ref_w
        ref_cy = reference_boxes[:, 1] + 0.5 * ref_h

        wx, wy, ww, wh = self.weights
        dx = codes[:, 0::4] / wx
        dy = codes[:, 1::4] / wy
        dw = torch.clamp(codes[:, 2::4] / ww, max=self.clamp)
        dh = torch.clamp(codes[:, 3::4] / wh, max=self.clamp)

        cx = dx * ref_w[:, None] + ref_cx[:, None]
        cy = dy * ref_h[:, None] + ref_cy[:, None]
        half_w = 0.5 * (torch.exp(dw) * ref_w[:, None])
        half_h = 0.5 * (torch.exp(dh) * ref_h[:, None])
        return torch.stack((cx - half_w, cy - half_h, cx + half_w, cy + half_h), dim=2)
