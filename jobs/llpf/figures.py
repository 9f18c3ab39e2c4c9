"""What the LLPF units report: the path's losses, distances and test metrics, its verdict (LLPF §4's criteria), and
the figures in the style of LLPF Figs. 2–4 (an M2M path drawn across its chained phases)."""

from __future__ import annotations

from ..base import Figure, Metric, Verdict

M2M_METRICS = (
    Metric("path_max_train_loss", "max train loss on path", ".4g"),
    Metric("max_final_distance", "final distance (verdict's measure)", ".4g"),
    Metric("max_final_distance_raw", "final distance to D itself", ".4g"),
    Metric("start_test_loss", "test loss at start", ".4f"),
    Metric("final_test_loss", "test loss at end", ".4f"),
    Metric("test_loss_change", "test loss change (end − start)", ".4f"),
    Metric("destination_test_loss", "test loss of D", ".4f"),
    Metric("start_test_acc", "test acc at start", ".4f", lower_is_better=False),
    Metric("final_test_acc", "test acc at end", ".4f", lower_is_better=False),
)

M2M_VERDICTS = (
    Verdict("valid", "valid path"),
    Verdict("train_loss_below_threshold", "loss ≤ L_thres"),
    Verdict("distance_converged", "reached D"),
    Verdict("test_loss_converged", "test loss kept"),
)

M2M_FIGURES = (  # the style of LLPF Figs. 2–4, one path drawn across its chained phases
    Figure(
        "loss",
        "LLPF M2M path: training loss",
        table="path",
        x="iteration",
        ys=("rolling_loss", "train_loss_full"),
        labels=("rolling mini-batch loss", "full training set"),
        xlabel="iteration",
        ylabel="cross-entropy loss",
        logy=True,
        smooth=10,
        chain="start",
        threshold_param="l_thres",
        threshold_label="L_thres (verdict: max full-set loss)",
    ),
    Figure(
        "distance",
        "LLPF M2M path: layer-wise L2 distance to D",
        table="path",
        x="iteration",
        ys=("dist.*",),
        labels=("tensor",),
        xlabel="iteration",
        ylabel="‖P − D‖ per tensor",
        logy=True,
        chain="start",
        exclude=("dist.*.running_mean", "dist.*.running_var"),
        threshold_param="distance_threshold",
        threshold_label="distance threshold (verdict)",
    ),
    Figure(
        "test",
        "LLPF M2M path: test loss and accuracy",
        table="path",
        x="iteration",
        ys=("test_loss",),
        y2s=("test_acc",),
        xlabel="iteration",
        chain="start",
    ),
    Figure(
        "pca",
        "LLPF M2M path points per layer (PCA)",
        style="pca",
        chain="start",
        destination="dest",
        origin="p0",
        exclude=("*.running_mean", "*.running_var"),
    ),
    Figure(
        "headline",
        "LLPF M2M path vs. the straight line, pair by pair",
        style="pairs",
        ys=("path_max_train_loss",),
        labels=("path: max full-set train loss",),
        verdict="valid",
        compare_kind="interpolate",
        compare_ys=("max_train_loss", "barrier_train_loss"),
        compare_labels=("straight line: max train loss", "straight line: train-loss barrier"),
        threshold_param="l_thres",
        threshold_label="L_thres",
        ylabel="cross-entropy loss (train)",
        logy=True,
        chain="start",
    ),
)

M2O_METRICS = (
    Metric("start_test_loss", "test loss at start", ".4f"),
    Metric("final_test_loss", "test loss at end", ".4f"),
    Metric("start_test_acc", "test acc at start", ".4f", lower_is_better=False),
    Metric("final_test_acc", "test acc at end", ".4f", lower_is_better=False),
    Metric("best_test_acc", "best test acc on path", ".4f", lower_is_better=False),
    Metric("path_max_train_loss", "max train loss on path", ".4g"),
    Metric("final_norm_ratio", "final/start norm", ".4f"),
)

M2O_VERDICTS = (Verdict("train_loss_below_threshold", "loss ≤ L_thres"),)

M2O_FIGURES = (
    Figure(
        "loss",
        "LLPF M2O path: training loss",
        table="path",
        x="iteration",
        ys=("rolling_loss", "train_loss_full"),
        labels=("rolling mini-batch loss", "full training set"),
        xlabel="iteration",
        ylabel="cross-entropy loss",
        logy=True,
        smooth=10,
        threshold_param="l_thres",
        threshold_label="L_thres (verdict: max full-set loss)",
    ),
    Figure(
        "norm",
        "LLPF M2O path: L2 norm per tensor (distance to the origin)",
        table="path",
        x="iteration",
        ys=("dist.*",),
        labels=("tensor",),
        xlabel="iteration",
        ylabel="‖P‖ per tensor",
        logy=True,
        exclude=("dist.*.running_mean", "dist.*.running_var"),
    ),
    Figure(
        "test",
        "LLPF M2O path: test loss and accuracy",
        table="path",
        x="iteration",
        ys=("test_loss",),
        y2s=("test_acc",),
        xlabel="iteration",
    ),
)
