"""The one evaluation protocol: full train and test sets, eval mode, UpBN / NoUpBN, counters untouched."""

from __future__ import annotations

import pytest
import torch

from lowloss.workers.data import load_dataset
from lowloss.workers.evaluation import Evaluator
from lowloss.workers.interpolation import reestimate_batchnorm
from lowloss.workers.models import build_model
from lowloss.workers.training import evaluate


def _model_with_stats():
    data = load_dataset("digits", None)
    torch.manual_seed(0)
    model = build_model("small_cnn", 10, 1, 8)
    model.train()(data.train_x[:128])  # running statistics of one batch, not of the training set
    return data, model


def test_policies_match_a_hand_computed_evaluation_and_keep_the_counters():
    data, model = _model_with_stats()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    reference = build_model("small_cnn", 10, 1, 8)
    reference.load_state_dict(state)
    kept = Evaluator(build_model("small_cnn", 10, 1, 8), data, "NoUpBN").evaluate(state)
    loss, acc = evaluate(reference, data.train_x, data.train_y)
    test_loss, test_acc = evaluate(reference, data.test_x, data.test_y)
    assert kept == {
        "train_loss": loss,
        "train_acc": acc,
        "train_error": 1 - acc,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "test_error": 1 - test_acc,
    }
    scratch = build_model("small_cnn", 10, 1, 8)
    evaluator = Evaluator(scratch, data, "UpBN")
    updated = evaluator.evaluate(state)
    reestimate_batchnorm(reference, data.eval_batches("train", 256))
    assert updated["test_loss"] == evaluate(reference, data.test_x, data.test_y)[0]
    assert updated["test_loss"] != pytest.approx(kept["test_loss"], rel=1e-3)  # the policies differ here
    assert not scratch.training
    assert int(scratch.bn1.num_batches_tracked) == int(state["bn1.num_batches_tracked"])  # counters are not changed
    assert evaluator.evaluate(state) == updated  # a pure function of the state


def test_bad_policy_and_unknown_tensors_are_refused():
    data, model = _model_with_stats()
    with pytest.raises(ValueError, match="bn: 'upbn' is not one of UpBN, NoUpBN"):
        Evaluator(model, data, "upbn")
    with pytest.raises(ValueError, match="not in the model"):
        Evaluator(model, data, "NoUpBN").evaluate({"nope.weight": torch.zeros(1)})
