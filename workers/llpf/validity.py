"""The verdict on a path: LLPF §4's three criteria of a valid low-loss path (``path_validity``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

TEST_LOSS_RULES = ("converge", "no_worse")


def path_validity(
    max_train_loss: float,
    l_thres: float,
    final_distances: Mapping[str, float] | float,
    distance_threshold: float,
    final_test_loss: float,
    start_test_loss: float,
    test_loss_tolerance: float,
    test_loss_rule: str = "converge",
    destination_test_loss: float | None = None,
) -> dict[str, Any]:
    """LLPF §4 (Fig. 2), LW §5: the three criteria of a valid low-loss path.

    1. the training loss stays in the low-loss space along the whole path: ``max_train_loss ≤ l_thres`` (Eq. 1 uses
       ≤; the papers report "all training losses remain below 0.1");
    2. the distance to D converges to (near) zero: every final distance in ``final_distances`` ≤
       ``distance_threshold`` (the papers: "final layer-wise distances gradually converge below 10^-1"; minor
       deviations are allowed because P0 and D lie only approximately on the same variance sphere, Eq. 4 — the caller
       chooses what the distances are measured to, e.g. ``destination_on_start_sphere``);
    3. the test loss: ``test_loss_rule="converge"`` (default, the paper's "the final testing loss should converge to
       the testing loss at iteration 0"): ``|final − start| ≤ test_loss_tolerance``; ``"no_worse"`` (generalisation
       must not get worse): ``final ≤ start + test_loss_tolerance``.

    Choices: every threshold is the caller's (the papers quantify 1 and 2 only by their figures: 0.1 and 1e-1; they
    give no number for 3, so the tolerance is absolute). A non-finite value fails its criterion. ``max_train_loss``
    should be the maximum over the path of the full-training-set loss the run records.

    Beside the verdicts it reports ``test_loss_change`` (signed, final − start; ``test_loss_gap`` is the same number
    under its older name), ``final_minus_destination_test_loss`` (final − D's own test loss, when given: the point the
    path converges to) and ``failures``: one line per failed criterion naming the value, the bound and by how much.
    """
    if test_loss_rule not in TEST_LOSS_RULES:
        raise ValueError(f"test_loss_rule {test_loss_rule!r} is not one of {', '.join(TEST_LOSS_RULES)}")
    if isinstance(final_distances, Mapping):
        items = list(final_distances.items())
    else:
        items = [("<all>", float(final_distances))]
    if items:
        farthest, max_dist = max(items, key=lambda kv: (not math.isfinite(kv[1]), kv[1]))
    else:
        farthest, max_dist = None, 0.0
    change = final_test_loss - start_test_loss
    train_ok = math.isfinite(max_train_loss) and max_train_loss <= l_thres
    dist_ok = all(math.isfinite(v) for _, v in items) and max_dist <= distance_threshold
    if test_loss_rule == "converge":
        test_ok = math.isfinite(change) and abs(change) <= test_loss_tolerance
    else:
        test_ok = math.isfinite(change) and change <= test_loss_tolerance
    failures = []
    if not train_ok:
        failures.append(
            f"train loss: max {max_train_loss:.4g} > L_thres {l_thres:.4g} (by {max_train_loss - l_thres:.4g})"
        )
    if not dist_ok:
        far = sum(1 for _, v in items if not (math.isfinite(v) and v <= distance_threshold))
        failures.append(
            f"distance: {farthest} at {max_dist:.4g} > distance_threshold {distance_threshold:.4g} "
            f"(by {max_dist - distance_threshold:.4g}; {far} of {len(items)} above)"
        )
    if not test_ok:
        bound = "|final − start|" if test_loss_rule == "converge" else "final − start"
        excess = (abs(change) if test_loss_rule == "converge" else change) - test_loss_tolerance
        failures.append(
            f"test loss ({test_loss_rule}): final {final_test_loss:.4f} − start {start_test_loss:.4f} = "
            f"{change:+.4f}; {bound} > tolerance {test_loss_tolerance:.4g} (by {excess:.4g})"
            + (
                "; the test loss improved: rule 'no_worse' accepts that"
                if test_loss_rule == "converge" and change < 0
                else ""
            )
        )
    vs_dest = None if destination_test_loss is None else float(final_test_loss - destination_test_loss)
    return {
        "valid": bool(train_ok and dist_ok and test_ok),
        "train_loss_below_threshold": bool(train_ok),
        "distance_converged": bool(dist_ok),
        "test_loss_converged": bool(test_ok),
        "max_train_loss": float(max_train_loss),
        "max_final_distance": float(max_dist),
        "farthest_tensor": farthest,
        "test_loss_gap": float(change),
        "test_loss_change": float(change),
        "test_loss_rule": test_loss_rule,
        "final_minus_destination_test_loss": vs_dest,
        "failures": failures,
    }
