"""``LLPFConfig``: the hyper-parameters of one LLPF phase, with the reference code's quirks as options."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .train_rule import TrainUntil


@dataclass(frozen=True)
class LLPFConfig:
    """Hyper-parameters of one LLPF phase (LLPF Tables 1, 2, 6; LW Appendix F).

    - ``step_a``, ``step_f``, ``step_c``: Move lengths (see ``move``; ``step_c`` needs the per-tensor lengths from
      ``phase_step_c_lengths``). ``clamp``: never pass D (default) vs the reference's overshoot.
    - ``train_rounds`` or ``train_threshold`` + ``train_max_rounds`` (+ ``train_min_rounds``, the rolling window):
      ``TrainUntil``.
    - ``variance_eps``: VarianceCorrection damping (0 exact; 1e-4 reproduces the reference).
    - ``correct_all_tensors``: reference quirk — the reference corrects every correctable tensor of the model, not
      only the phase's (its ignore list never matches: ``layer_name in [ignore_layer_list]``).
    - ``train_outside_phase``: reference quirk — the reference's optimizer holds every parameter, so training also
      moves tensors outside the phase. When False, ``llpf_m2m_iteration`` refuses an optimizer that holds a parameter
      outside the phase.
    - ``freeze_stats_outside_phase``: restore the buffers outside the phase (BatchNorm running statistics,
      ``num_batches_tracked``) after training, making the iteration leave EVERY tensor outside the phase bit-for-bit
      unchanged. Default False: running statistics keep following the activations, which change as upstream layers
      move (the reference behaviour; frozen statistics go stale and only matter in eval mode).
    - ``conformal_all_tensors`` (Algorithm 2): False scales the learning rate of moved ``*.weight`` tensors only, as the
      reference does ("only adjust weights, not biases"); True scales every moved tensor's.
    - ``group_weight_bias``: Move (and the distance it measures) treats each layer's weight and bias as one joined
      vector (``weight_bias_groups``), as the authors' LeNet5 configurations do; False moves every tensor on its own.
      VarianceCorrection stays per tensor either way (as in the reference).
    - ``compensate_layernorm`` (Algorithm 2): move LayerNorm tensors away from the origin by the same Move
      (``compensating_move``), as the authors' M2O code does; False leaves every normalization layer where it is
      (the paper's §3.2 rule).
    """

    step_a: float = 0.0
    step_f: float = 0.0
    step_c: float = 0.0
    clamp: bool = True
    train_rounds: int | None = None
    train_threshold: float | None = None
    train_min_rounds: int = 10
    train_max_rounds: int | None = None
    variance_eps: float = 0.0
    correct_all_tensors: bool = False
    train_outside_phase: bool = False
    freeze_stats_outside_phase: bool = False
    conformal_all_tensors: bool = False
    group_weight_bias: bool = False
    compensate_layernorm: bool = False

    def __post_init__(self):
        if min(self.step_a, self.step_f, self.step_c) < 0:
            raise ValueError("step_a, step_f and step_c must be ≥ 0")
        if self.step_a == 0 and self.step_f == 0 and self.step_c == 0:
            raise ValueError("step_a, step_f and step_c are all 0: Move would never move")
        if self.variance_eps < 0:
            raise ValueError("variance_eps must be ≥ 0")
        self.train_until()  # validates the stop rule

    def train_until(self) -> TrainUntil:
        return TrainUntil(self.train_rounds, self.train_threshold, self.train_min_rounds, self.train_max_rounds)

    def with_reference_quirks(
        self, group_weight_bias: bool | None = True, compensate_layernorm: bool | None = True
    ) -> LLPFConfig:
        """The same phase as the authors' code runs it: unclamped Move, eps-damped correction of every tensor,
        training of every parameter, and — unless given as False (a configuration of the authors that turns them
        off) or None (keep this config's value) — weight and bias moved as one vector and LayerNorm compensated in
        M2O."""
        extra = {}
        if group_weight_bias is not None:
            extra["group_weight_bias"] = group_weight_bias
        if compensate_layernorm is not None:
            extra["compensate_layernorm"] = compensate_layernorm
        return replace(
            self, clamp=False, variance_eps=1e-4, correct_all_tensors=True, train_outside_phase=True, **extra
        )
