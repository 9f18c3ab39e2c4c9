"""Training batches as a pure function of (seed, step), per step and prepared per epoch on the device."""

from __future__ import annotations

import pytest
import torch
from datafiles import write_cifar10

from lowloss.workers.data import BatchStream, load_dataset


def test_batches_are_a_pure_function_of_seed_and_step():
    data = load_dataset("digits")
    s1, s2 = BatchStream(data, 64, seed=3), BatchStream(data, 64, seed=3)
    for step in (0, 5, 30, 7):  # any order, any stream
        assert torch.equal(s1.batch(step)[0], s2.batch(step)[0])
    assert not torch.equal(BatchStream(data, 64, seed=4).batch(0)[1], s1.batch(0)[1])
    # one epoch visits every example once
    seen = torch.cat([s1.batch(k)[1] for k in range(s1.steps_per_epoch)])
    assert len(seen) == len(data.train_y)


@pytest.mark.parametrize("dataset", ["mnist5k", "cifar10"])
def test_batches_prepared_per_epoch_on_the_device_equal_the_batches_drawn_per_step(dataset, tmp_path):
    """The GPU path (order and augmentation parameters of a whole epoch moved to the device at once) gives the same
    batches, byte for byte, as drawing each batch from its own generator; forced here on the CPU."""
    from lowloss.workers.data import BatchStream, load_dataset

    data = load_dataset("mnist5k") if dataset == "mnist5k" else load_dataset("cifar10", str(write_cifar10(tmp_path)))
    per_step = BatchStream(data, 16, seed=3, prefetch=False)
    per_epoch = BatchStream(data, 16, seed=3, prefetch=True)
    assert per_epoch._split and not per_step._split
    last = per_step.steps_per_epoch - 1  # a short last batch when the set is not a multiple of 16
    for step in (0, 1, last, last + 2):
        (xa, ya), (xb, yb) = per_step.batch(step), per_epoch.batch(step)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
