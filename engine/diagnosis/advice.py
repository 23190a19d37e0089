"""Whether the anchor suggestion is worth a retraining, read from the split's funnel and TIDE.

Anchors decide which boxes the RPN learns to propose. A better anchor fit can only help boxes
the RPN does not already cover: those lost at ``anchors`` (no anchor reaches the positive IoU
and no proposal covers the box) or at ``proposals`` (no box the RPN regresses covers it). When
the funnel loses none there, the RPN already finds every box (the low-quality matching rule of
Ren et al. 2015, kept by torchvision's ``Matcher(allow_low_quality_matches=True)``, gives each
box its best anchors as positives even below 0.7), and changing the anchors restarts the RPN
head on new outputs for no recall to gain: on the raccoon photos such a suggestion (55.8% ->
99.5% of boxes at IoU 0.7, nothing lost at the RPN) lowered AP50 from 0.770 to 0.706 at the same
81 steps (docs/diagnosis.md). The advice then points at TIDE's largest error instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from .anchor_fit import POSITIVE_IOU, AnchorSuggestion
from .funnel import FATE_TITLES, FunnelCounts
from .tide import ERROR_TITLES, TideResult

RPN_FATES = ("anchors", "proposals")  # the fates a different anchor set can change


@dataclass(frozen=True)
class AnchorAdvice:
    """``recommended`` True when retraining with the suggested anchors may gain recall: the
    suggestion changes the anchors and the split loses ``lost_at_rpn`` > 0 boxes at the fates
    in :data:`RPN_FATES`; ``text`` says so, or what to work on instead, in one paragraph."""

    recommended: bool
    lost_at_rpn: int
    text: str

    def to_dict(self) -> dict:
        return {"recommended": self.recommended, "lost_at_rpn": self.lost_at_rpn,
                "text": self.text}


def anchor_advice(funnel: FunnelCounts, tide: TideResult,
                  suggestion: AnchorSuggestion) -> AnchorAdvice:
    """The advice for one diagnosed split (see the module's docstring)."""
    lost = sum(funnel.total.get(fate, 0) for fate in RPN_FATES)
    before = 100 * suggestion.before.share(POSITIVE_IOU)
    after = 100 * suggestion.after.share(POSITIVE_IOU)
    if not suggestion.changed:
        return AnchorAdvice(False, lost, f"{before:.1f}% of the project's boxes have an anchor "
                            "at IoU >= 0.7; no other anchors found that do better.")
    fit = (f"{before:.1f}% of the project's boxes have an anchor at IoU >= 0.7; with the "
           f"suggested anchors {after:.1f}%.")
    if lost:
        where = ", ".join(f"{funnel.total[f]} at \"{FATE_TITLES[f]}\"" for f in RPN_FATES
                          if funnel.total.get(f))
        return AnchorAdvice(True, lost, f"{fit} {lost} of the split's {funnel.boxes} boxes are "
                            f"lost at the RPN ({where}): retraining with the suggestion may "
                            "find them.")
    worst = max(tide.dap, key=tide.dap.get, default=None)
    instead = (f" TIDE's largest error is {ERROR_TITLES[worst]} ({tide.dap[worst]:.1f} AP "
               "points): work on that first." if worst is not None and tide.dap[worst] > 0
               else "")
    return AnchorAdvice(False, 0, f"{fit} But no box of the split is lost at the anchors or "
                        "the RPN, so the suggestion is unlikely to raise AP (it restarts the "
                        f"RPN head on new anchors).{instead}")
