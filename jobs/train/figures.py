"""What a train unit reports: its final losses and accuracies, and its training curves."""

from __future__ import annotations

from ..base import Figure, Metric

METRICS = (
    Metric("final_train_loss", "train loss", ".4f"),
    Metric("final_test_loss", "test loss", ".4f"),
    Metric("final_train_acc", "train acc", ".4f", lower_is_better=False),
    Metric("final_test_acc", "test acc", ".4f", lower_is_better=False),
)

FIGURES = (
    Figure(
        "loss",
        "Training curves: loss",
        table="evals",
        x="epoch",
        ys=("train_loss", "test_loss"),
        labels=("train loss", "test loss"),
        xlabel="epoch",
        ylabel="cross-entropy loss",
        logy=True,
    ),
    Figure(
        "accuracy",
        "Training curves: accuracy",
        table="evals",
        x="epoch",
        ys=("train_acc", "test_acc"),
        labels=("train accuracy", "test accuracy"),
        xlabel="epoch",
        ylabel="accuracy",
        ylim=(None, 1.01),
    ),
    Figure(
        "batch-loss",
        "Mini-batch training loss",
        table="steps",
        x="step",
        ys=("loss",),
        labels=("batch loss",),
        xlabel="optimizer step",
        ylabel="cross-entropy loss",
        logy=True,
        smooth=20,
    ),
)
