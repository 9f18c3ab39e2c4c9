"""Store benchmark (issue: a store that holds on cluster file systems). Prints figures; asserts nothing.

    python bench/store.py [--sizes 1,45,135] [--repeats 5] [--renewals 200]

1. What a unit pays for reading an input whose sha256 is checked again in every unit (a warm worker forgets what it
   verified before each unit: bit rot keeps a file's size, time and inode): a committed tensor set of each size
   (MiB; 1 ≈ a small CNN, 45 ≈ ResNet-18, 135 ≈ a VGG16 with its head) read through the store (``read.tensors``)
   and used (every value touched), three ways side by side — size checked only (``verify=False``), sha256 trusted
   from an earlier check in the process (the cache before this change), and sha256 computed (each unit now) — and
   the ratio of the last two.
2. What the locks cost a unit: taking and letting go of a unit's lock with ``flock`` against with a lease (create,
   fsync, start the renewer; stop it, remove), and one lease renewal (a 512-byte in-place rewrite + fsync), which a
   running unit pays every ``lease_seconds / 6`` seconds.

Run it on the file system the store lives on: ``--dir`` (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from statistics import median


def _store_with(root: Path, mib: int):
    import torch

    from lowloss.orchestrator.store import Store, UnitRecord, unit_id

    store = Store(root)
    store.init_study("bench-store", "")
    params = {"mib": mib}
    uid = unit_id("bench", 1, params, {})
    record = UnitRecord(uid, "bench", 1, params, {})
    store.write_unit(record)
    from lowloss.orchestrator.store import UnitWriter

    n = mib * (1 << 20) // 4
    UnitWriter(store.layout, record).commit({"mib": mib}, outputs={"final": {"w": torch.randn(n)}})
    return store, uid


def _timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return median(times)


def _read_times(store, uid: str, repeats: int) -> tuple[float, float, float]:
    """(size only, sha256 cached, sha256 each unit): median seconds to read and use the unit's tensor set."""
    from lowloss.orchestrator.store.digests import forget_verified

    def use(verify: bool = True) -> None:  # a unit uses what it reads: every value is touched (the file is mapped)
        for tensor in store.read.tensors(uid, "bench", "final", verify=verify).values():
            tensor.sum()

    def each_unit() -> None:
        forget_verified()
        use()

    use()  # page cache warm, as for a file a worker read moments ago
    return _timed(lambda: use(verify=False), repeats), _timed(use, repeats), _timed(each_unit, repeats)


def bench_input_checks(base: Path, sizes: list[int], repeats: int) -> None:
    print("1. reading and using an input tensor set (median of", repeats, "reads; page cache warm)")
    header = ("MiB", "size only", "sha256 cached", "sha256 each unit", "ratio", "extra/unit")
    print(f"{header[0]:>5} {header[1]:>10} {header[2]:>14} {header[3]:>17} {header[4]:>6} {header[5]:>11}")
    for mib in sizes:
        store, uid = _store_with(base / f"inputs-{mib}", mib)
        size_only, cached, hashed = _read_times(store, uid, repeats)
        print(
            f"{mib:>5} {size_only * 1e3:>8.1f}ms {cached * 1e3:>12.1f}ms {hashed * 1e3:>15.1f}ms "
            f"{hashed / cached:>5.2f}× {(hashed - cached) * 1e3:>9.1f}ms"
        )


def _lock_times(base: Path, mechanism, renewals: int) -> tuple[float, float | None]:
    """(take + release, one renewal under leases) median seconds for one unit's lock."""
    from lowloss.orchestrator.store import LockMechanism, Store, UnitRecord, unit_id

    store = Store(base / f"locks-{mechanism.value}")
    store.init_study("bench-locks", "")
    record = UnitRecord(unit_id("bench", 1, {}, {}), "bench", 1, {}, {})
    store.write_unit(record)
    store.locks._mechanism, store.locks._lease_seconds = mechanism, 60.0

    def take_and_release() -> None:
        hold = store.locks.take_unit(record.id, record.kind)
        assert hold is not None
        hold.release()

    took = _timed(take_and_release, renewals)
    if mechanism is not LockMechanism.LEASE:
        return took, None
    hold = store.locks.take_unit(record.id, record.kind)
    assert hold is not None and hold.lease is not None
    renew = _timed(hold.lease.renew, renewals)
    hold.release()
    return took, renew


def bench_locks(base: Path, renewals: int) -> None:
    from lowloss.orchestrator.store import LockMechanism

    print("2. a unit's lock: take and let go (median of", renewals, "), and one lease renewal")
    flock, _ = _lock_times(base, LockMechanism.FLOCK, renewals)
    lease, renew = _lock_times(base, LockMechanism.LEASE, renewals)
    assert renew is not None
    took = f"flock take + release {flock * 1e3:.2f} ms; lease take + release {lease * 1e3:.2f} ms"
    print(f"   {took} ({lease / flock:.1f}×)")
    print(
        f"   one renewal {renew * 1e3:.2f} ms; at the default 60 s lease (every 10 s) that is "
        f"{renew / 10 * 100:.4f} % of a running unit's time"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1,45,135", help="tensor set sizes in MiB")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--renewals", type=int, default=200)
    p.add_argument("--dir", help="where the stores go (the file system to measure); default a temporary folder")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        bench_input_checks(Path(tmp), [int(s) for s in args.sizes.split(",")], args.repeats)
        bench_locks(Path(tmp), args.renewals)


if __name__ == "__main__":
    main()
