"""The bottom floor: the algorithms of the four papers and the field's methods as plain functions over parameter tensors
and batches (``training``, ``interpolation``, ``llpf``, ``autoneb``, ``landscape``, ``evaluation``), and what they run
on (``data``, ``architectures``, ``models``, ``vectorize``). Nothing here knows about the store, the spec or Slurm."""

if __name__ != "lowloss.workers":  # a checkout's folder imported bare: its relative imports would not resolve
    raise ImportError(f"import lowloss.workers, not {__name__} (install lowloss: pip install .)")
