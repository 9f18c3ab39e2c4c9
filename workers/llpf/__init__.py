"""Low-Loss Path Finding (LLPF) primitives: plain functions over parameter tensors.

Two papers describe the method:

- "Low-Loss Space in Neural Networks is Continuous and Fully Connected" (Tian et al.), cited as *LLPF*:
  Algorithm 1 (LLPF_M2M, model to model), Algorithm 2 (LLPF_M2O, model to origin), §4 path validity, A.6-A.8.
- "Connecting Independently Trained Modes via Layer-Wise Connectivity", cited as *LW*: §4 (phases following the data
  flow, the FDF strategy with ``step_c``), Appendix F (recipes), Appendix N (architectures).

Conventions used throughout:

- A *state* is a ``{name: tensor}`` mapping in PyTorch ``state_dict`` naming. Per-tensor functions (``move``,
  ``variance_correction``) return new tensors; the dict-level helpers (``move_state``, ``apply_variance_correction``)
  write **in place** into the tensors of the mapping they are given, so passing ``model.state_dict()`` (whose tensors
  share storage with the parameters and buffers) updates the model without replacing any ``Parameter`` object the
  optimizer holds.
- Variance is the **population** variance ``mean((w - mean(w))**2)`` (``unbiased=False``), computed in float64, as
  written in LLPF Alg. 1 l.21. The reference code uses ``torch.var`` (unbiased); the ratio target/current that the
  correction applies is the same under both definitions as long as one definition is used for both, which this package
  guarantees by computing targets with ``tensor_variance``/``state_variances``.
- A *phase* is the list of state names one LLPF stage moves (LLPF Table 1 "Applied layers"); build it with
  ``select_tensors`` from the recipes' patterns.

The modules: ``selection`` (tensor name patterns, normalization layers' tensors), ``phase`` (a phase's parameters
and optimizer), ``units`` (the units Move works on), ``distances``, ``move`` (Move, ``step_c``, LayerNorm
compensation), ``variance`` (VarianceCorrection), ``train_rule`` (Train^r), ``config`` (``LLPFConfig``),
``iteration`` (the M2M and M2O iterations), ``validity`` (the path's verdict).

This package imports only torch and the standard library.
"""

from __future__ import annotations

from .config import LLPFConfig
from .distances import layer_distances, tensor_distances
from .iteration import angle_conformal, llpf_m2m_iteration, llpf_m2o_iteration
from .move import compensating_move, move, move_state, phase_step_c_lengths
from .phase import phase_optimizer, phase_parameters
from .selection import layernorm_tensor_names, normalization_tensor_names, select_tensors
from .train_rule import TrainResult, TrainUntil, train_r
from .units import group_label, weight_bias_groups
from .validity import path_validity
from .variance import (
    apply_variance_correction,
    correctable,
    destination_on_start_sphere,
    state_variances,
    tensor_variance,
    variance_correction,
)

__all__ = [
    "select_tensors",
    "normalization_tensor_names",
    "phase_parameters",
    "phase_optimizer",
    "weight_bias_groups",
    "group_label",
    "move",
    "move_state",
    "phase_step_c_lengths",
    "compensating_move",
    "layer_distances",
    "destination_on_start_sphere",
    "layernorm_tensor_names",
    "tensor_variance",
    "state_variances",
    "correctable",
    "variance_correction",
    "apply_variance_correction",
    "TrainUntil",
    "TrainResult",
    "train_r",
    "LLPFConfig",
    "llpf_m2m_iteration",
    "angle_conformal",
    "llpf_m2o_iteration",
    "tensor_distances",
    "path_validity",
]
