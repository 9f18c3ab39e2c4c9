"""The read side: ``api`` (a study read from its store: rows, results, points, as pyarrow Tables and numpy arrays),
``summary`` (statistics over repetitions), ``tables`` (the summary and per-unit results in every format),
``figures`` (every figure the kinds declare) and its data (``figure_data``), ``status`` (where each unit stands) and
``logs`` (a unit's logs, from inside the store only).

    from lowloss.orchestrator.report import open_study, summary
"""

from .api import CombinedView, StageView, StudyView, open_study
from .tables import results_table, summary

__all__ = ["CombinedView", "StageView", "StudyView", "open_study", "results_table", "summary"]
