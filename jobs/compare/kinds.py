"""Stage kind ``compare`` and unit kind ``path_eval``: the paths of several methods between the **same pairs** of
modes — the straight line (an ``interpolate`` stage), the LLPF M2M path (an ``m2m`` stage) and the AutoNEB path (an
``autoneb`` stage) — evaluated with the one evaluation protocol (``workers.evaluation.Evaluator``: full training set
without augmentation and test set, eval mode, a stated BatchNorm policy ``UpBN``/``NoUpBN``), so that their numbers
compare. The papers' own metrics (LLPF's window loss, the AutoNEB edge's dense evaluation) stay as their kinds
compute them; this stage re-evaluates the stored points of each path alike.

A path is the polyline through its **vertices**: the two modes (linear), the mode P0, every point the M2M phases
stored (``point_stride``) and each phase's end point (LLPF), or the final pivots (AutoNEB). Between neighbouring
vertices ``points_between`` interpolated points are evaluated too (the straight line: ``line_points`` in all; AutoNEB:
``points_between``, the paper's 9; LLPF: ``llpf_points_between``, default 0: only the points the path went through).
Each polyline segment is one committed segment, so a killed unit resumes at the next one. The path length is the
polyline's, over the parameters (for LLPF a lower bound of its iterates' path: only the stored points are known).

The report (``lowloss report --out``) writes ``<stage>-methods.md``/``.csv``: per pair and method the maximum train
loss on the path, the barrier relative to the path's two ends, the maximum test error, the path length and its ratio
to the straight line, the points evaluated, and the CPU-, GPU- and wall-seconds the producing units spent (their
attempt records in the store; the modes' training, common to all methods, is not counted).
"""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import Field

from ..base import Figure, Metric, Plan, Ref, Resources, StageKind, StageParams, UnitDraft, UnitKind, UnitParams
from ..common.params import build_for, load_data

METHOD_OF_STAGE = {"interpolate": "linear", "m2m": "llpf", "autoneb": "autoneb"}
METHODS = ("linear", "llpf", "autoneb")


class CompareStage(StageParams):
    from_: Union[str, list[str]] = Field(alias="from", description="interpolate, m2m and/or autoneb stages")
    pairs: Literal["common", "all"] = Field(
        default="common", description="common: the pairs every method connected; all: every pair of each method"
    )
    bn: Literal["UpBN", "NoUpBN"] = Field(default="UpBN", description="BatchNorm policy at every point")
    line_points: int = Field(default=21, ge=2, le=10001, description="points on the straight line, ends included")
    points_between: int = Field(default=9, ge=0, le=1000, description="points between neighbouring AutoNEB pivots")
    llpf_points_between: int = Field(
        default=0, ge=0, le=1000, description="points between neighbouring stored LLPF points (0: the stored ones)"
    )
    eval_batch_size: int = Field(default=1024, ge=1, le=1 << 20)


class PathEvalParams(UnitParams):
    method: Literal["linear", "llpf", "autoneb"]
    pair: tuple[int, int]
    bn: Literal["UpBN", "NoUpBN"]
    points_between: int = Field(ge=0)
    eval_batch_size: int = Field(ge=1)


def _param_length(u: dict, v: dict, names: list[str]) -> float:
    import torch

    total = torch.zeros((), dtype=torch.float64)
    for n in names:
        total += (v[n].double() - u[n].double()).pow(2).sum().cpu()
    return float(total.sqrt())


def _draw_paths(ax, data) -> None:
    """Train loss along each method's path (normalised arc length), one panel per pair (the first six)."""
    import numpy as np

    by_pair: dict[str, dict[str, Any]] = {}
    for table in data.values():
        rows = table.to_pylist()
        if rows:
            by_pair.setdefault(f"{min(rows[0]['a'], rows[0]['b'])}-{max(rows[0]['a'], rows[0]['b'])}", {})[
                rows[0]["method"]
            ] = rows
    pairs = sorted(by_pair)[:6]
    ax.set_axis_off()
    width = 1.0 / max(len(pairs), 1)
    colours = {"linear": "C0", "llpf": "C1", "autoneb": "C2"}
    for g, pair in enumerate(pairs):
        panel = ax.inset_axes([g * width + 0.08 * width, 0.12, 0.84 * width, 0.8])
        for method in METHODS:
            rows = by_pair[pair].get(method)
            if not rows:
                continue
            arc = np.array([r["arc"] for r in rows])
            x = arc / arc[-1] if arc[-1] > 0 else arc
            y = np.array([r["train_loss"] for r in rows])
            vertex = np.array([r["vertex"] for r in rows], dtype=bool)
            only_vertices = bool(vertex.all())  # nothing evaluated between the points: dashed, not a measured line
            label = f"{method} (stored points)" if only_vertices else method
            panel.plot(x, y, lw=1.2, color=colours[method], ls="--" if only_vertices else "-", label=label)
            panel.plot(x[vertex], y[vertex], "o", ms=2.5, color=colours[method])
        panel.set_yscale("log")
        panel.set_title(f"pair {pair}", fontsize=8)
        panel.set_xlabel("position on path (normalised arc length)", fontsize=7)
        if g == 0:
            panel.set_ylabel("train loss (full set, eval mode)", fontsize=7)
            panel.legend(fontsize=6)
        panel.tick_params(labelsize=6)


class PathEvalUnit(UnitKind):
    name = "path_eval"
    version = 1
    Params = PathEvalParams
    default_resources = Resources(cpus=1, gpus=0, mem_gb=2.0, time_min=60, resource_class="eval")
    metrics = (
        Metric("max_train_loss", "max train loss on path", ".4g"),
        Metric("barrier_train_loss", "max train loss − higher end", ".4g"),
        Metric("max_test_error", "max test error on path", ".4f"),
        Metric("length_ratio", "path length / straight line", ".3f"),
    )
    tables = ("path",)
    figures = (
        Figure(
            "methods",
            "The same pairs by every method, one evaluation protocol",
            style="methods",
            ys=(
                "max_train_loss",
                "barrier_train_loss",
                "max_test_error",
                "path_length",
                "length_ratio",
                "points",
                "bn",
            ),
            labels=(
                "max train loss",
                "barrier (max − higher end)",
                "max test error",
                "path length",
                "length / straight",
                "points",
                "BN",
            ),
            row_param="pair",
            column_param="method",
            cost_exclude=("a", "b"),
            ylabel="max train loss on path (full set, eval mode)",
            logy=True,
        ),
        Figure(
            "paths",
            "Train loss along each method's path",
            table="path",
            style="custom",
            draw=_draw_paths,
        ),
    )

    def run(self, ctx, p: PathEvalParams) -> None:
        from ...workers.evaluation import Evaluator
        from ...workers.interpolation import interpolate_state

        mode = ctx.input_params("a")
        data = load_data(ctx, mode.data)
        model = build_for(mode.model, data, ctx.device)
        evaluator = Evaluator(model, data, p.bn, p.eval_batch_size)
        params = [n for n, _ in model.named_parameters()]
        sa = {k: v.to(ctx.device) for k, v in ctx.input_final_state("a").items()}
        sb = {k: v.to(ctx.device) for k, v in ctx.input_final_state("b").items()}
        straight = _param_length(sa, sb, params)

        phase_roles = _roles(ctx)

        def vertices():
            if p.method == "linear":
                yield sa
                yield sb
            elif p.method == "autoneb":
                from ...workers.autoneb import neb

                layout = neb.state_layout(model)
                for row in ctx.input_tensors("edge")["pivots"]:
                    yield neb.unflatten_state(row.to(ctx.device), layout, sa)
            else:
                yield sa
                for role in phase_roles:
                    iterations = ctx.input_params(role).iterations
                    for step, tensors in ctx.input_points(role):
                        if 0 < step < iterations:  # the stored end point is the phase's final state, next
                            yield {n: t.to(ctx.device) for n, t in tensors.items()}
                    yield {n: t.to(ctx.device) for n, t in ctx.input_final_state(role).items()}

        done = ctx.committed_segments()  # one segment per polyline segment: a resume continues at the next one
        alphas = [j / (p.points_between + 1) for j in range(p.points_between + 1)]
        previous, index, arc, count = None, 0, 0.0, 0
        for vertex in vertices():
            if previous is not None:
                length = _param_length(previous, vertex, params)
                if index >= done:
                    rows = [
                        self._row(
                            p,
                            index,
                            alpha,
                            j == 0,
                            arc + alpha * length,
                            evaluator,
                            previous if j == 0 else interpolate_state(previous, vertex, alpha),
                        )
                        for j, alpha in enumerate(alphas)
                    ]
                    ctx.write_segment(index, {"path": rows})
                    ctx.progress(index + 1, index + 2, train_loss=max(r["train_loss"] for r in rows))
                arc += length
                count += len(alphas)
                index += 1
            previous = vertex
        if previous is None or index == 0:
            raise ValueError(f"path_eval {p.method} {p.pair}: the path has fewer than two points")
        if index >= done:  # the path's last vertex: a segment of its own
            ctx.write_segment(
                index, {"path": [self._row(p, index, 0.0, True, arc, evaluator, previous)]}, stop=False
            )  # the commit follows
        count += 1
        rows = ctx.rows("path").to_pylist()
        train = [r["train_loss"] for r in rows]
        test_error = [r["test_error"] for r in rows]
        ctx.commit(
            {
                "method": p.method,
                "pair": list(p.pair),
                "bn": p.bn,
                "points": count,
                "vertices": index + 1,
                "max_train_loss": max(train),
                "max_test_loss": max(r["test_loss"] for r in rows),
                "max_test_error": max(test_error),
                "start_train_loss": train[0],
                "end_train_loss": train[-1],
                "barrier_train_loss": max(train) - max(train[0], train[-1]),
                "barrier_test_error": max(test_error) - max(test_error[0], test_error[-1]),
                "path_length": arc,
                "straight_length": straight,
                "length_ratio": arc / straight if straight > 0 else None,
            }
        )

    @staticmethod
    def _row(p, segment: int, alpha: float, vertex: bool, arc: float, evaluator, state) -> dict:
        return {
            "method": p.method,
            "a": p.pair[0],
            "b": p.pair[1],
            "segment": segment,
            "alpha": alpha,
            "vertex": vertex,
            "arc": arc,
            **evaluator.evaluate(state),
        }


def _roles(ctx) -> list[str]:
    """The input roles of the running unit (phase1, phase2, … for an LLPF path)."""
    roles: list[str] = []
    k = 1
    while True:
        try:
            ctx.input_params(f"phase{k}")
        except KeyError:
            return roles
        roles.append(f"phase{k}")
        k += 1


class CompareStageKind(StageKind):
    name = "compare"
    Table = CompareStage
    unit_kinds = ("path_eval",)
    needs_input_stage = True
    many_inputs = True

    def validate(self, table: CompareStage, study, stages):
        seen: dict[str, str] = {}
        for src in self.inputs_of(table):
            kind = stages[src].kind if src in stages else None
            if kind not in METHOD_OF_STAGE:
                return [
                    (
                        "from",
                        src,
                        f"stages of kind interpolate (linear), m2m (LLPF) or autoneb; "
                        f"stage {src!r} is of kind {kind!r}",
                    )
                ]
            method = METHOD_OF_STAGE[kind]
            if method in seen:
                return [("from", src, f"one stage per method; {seen[method]!r} is already the {method} stage")]
            seen[method] = src
        return []

    def describe(self, table: CompareStage, study):
        return [
            f"pairs ({table.pairs}) of stages {', '.join(self.inputs_of(table))}, evaluated alike: full train and test "
            f"sets, eval mode, BatchNorm {table.bn}; {table.line_points} points on a straight line, "
            f"{table.points_between} between AutoNEB pivots, {table.llpf_points_between} between stored LLPF points"
        ]

    def plan(self, table: CompareStage, study, view) -> Plan:
        sources = self.inputs_of(table)
        for src in sources:
            if view.is_open(src) or not view.decided(src):
                return Plan([], open=True, note=f"waiting for stage {src}")
        paths: dict[str, dict[tuple[int, int], dict]] = {}
        for src in sources:
            units = [u for u in view.units(src) if view.result(u.id) is not None]
            if not units:
                continue
            kind = units[0].kind
            found: dict[tuple[int, int], dict] = {}
            if kind == "interpolate":
                method = "linear"
                for u in units:
                    found[tuple(u.params["pair"])] = {"a": u.inputs["a"], "b": u.inputs["b"], "line": u.id}
            elif kind == "autoneb_edge":
                method = "autoneb"
                for u in units:
                    found[tuple(u.params["pair"])] = {
                        "a": u.inputs["a"],
                        "b": u.inputs["b"],
                        "edge": Ref(u.id, "pivots"),
                    }
            elif kind == "m2m_phase":
                method = "llpf"
                phases: dict[tuple[int, int], dict[int, Any]] = {}
                for u in units:
                    phases.setdefault(tuple(u.params["pair"]), {})[u.params["phase"]] = u
                for pair, by_phase in phases.items():
                    first = by_phase.get(1)
                    if first is None or len(by_phase) != first.params["phases"]:
                        continue  # a phase failed: no whole path
                    found[pair] = {
                        "a": first.inputs["p0"],
                        "b": first.inputs["dest"],
                        **{f"phase{k}": by_phase[k].id for k in sorted(by_phase)},
                    }
            else:
                continue
            paths[method] = found
        keys = {m: {tuple(sorted(q)): q for q in found} for m, found in paths.items()}
        common = set.intersection(*(set(k) for k in keys.values())) if keys else set()
        drafts = []
        for method in METHODS:
            if method not in paths:
                continue
            between = {"linear": table.line_points - 2, "autoneb": table.points_between}.get(
                method, table.llpf_points_between
            )
            for key in sorted(keys[method]):
                if table.pairs == "common" and key not in common:
                    continue
                pair = keys[method][key]
                drafts.append(
                    UnitDraft(
                        "path_eval",
                        PathEvalParams.model_validate(
                            {
                                "method": method,
                                "pair": pair,
                                "bn": table.bn,
                                "points_between": between,
                                "eval_batch_size": table.eval_batch_size,
                            }
                        ),
                        paths[method][pair],
                        f"pair={key[0]}-{key[1]} {method}",
                    )
                )
        pairs = len({d.label.split()[0] for d in drafts})
        return Plan(drafts, note=f"{pairs} pair(s) × {len(paths)} method(s), BatchNorm {table.bn}")
