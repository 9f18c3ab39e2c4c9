"""The top floor: the spec (``spec``), the engine that plans and runs a study (``engine``), the store (``store``), the
runtime a unit runs in (``runtime``), the executors (``executors``), the read side (``report``) and the command line
(``cli``). It reaches the science only through ``lowloss.jobs``."""

if __name__ != "lowloss.orchestrator":  # a checkout's folder imported bare: its relative imports would not resolve
    raise ImportError(f"import lowloss.orchestrator, not {__name__} (install lowloss: pip install .)")
