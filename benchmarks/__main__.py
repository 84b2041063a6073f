"""Run every benchmark script, or the ones named, one after the other (``make bench``).

    python -m benchmarks [NAME ...] [--threads N] [--quick]

``--threads`` and ``--quick`` are passed to every script that takes them; each script also runs alone
(``python -m benchmarks.bench_numba_infer --help``). A script whose peers are not installed (snnTorch,
onnxruntime, numba) is skipped with the reason; the run fails if a script finds that its peers do not
compute the same spikes.
"""

import argparse
import importlib
import pkgutil
import sys
import time
from pathlib import Path

from snnir.errors import SnnirError

#: the options each script takes, of those this runner passes on
OPTIONS = {"bench_numba_infer": ("threads", "quick"), "bench_onnx": ("threads",), "bench_torch_train": ("threads", "quick")}


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run (default: all): {', '.join(names)}")
    parser.add_argument("--threads", type=int, help="threads for every peer (default: each script's own)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (for a smoke test, not for figures)")
    args = parser.parse_args(argv)
    wanted = [n if n.startswith("bench_") else f"bench_{n}" for n in args.names] or names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; available: {names}")
    failed = []
    for name in wanted:
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        passed = [f"--{option}" + ("" if option == "quick" else f"={getattr(args, option)}")
                  for option in OPTIONS.get(name, ()) if getattr(args, option) not in (None, False)]
        try:
            status = importlib.import_module(f"benchmarks.{name}").main(passed)
        except ModuleNotFoundError as error:
            print(f"skipped: {error.name} is not installed ({error})", flush=True)
            continue
        except SystemExit as exit_:  # a script's own refusal, e.g. peers that disagree
            status = exit_.code
            print(exit_.code if isinstance(exit_.code, str) else "", file=sys.stderr)
        except SnnirError as error:  # e.g. a result file that cannot be written: the next scripts still run
            status = 1
            print(f"{name}: error: {error}", file=sys.stderr)
        if status:
            failed.append(name)
        print(f"({name} took {time.perf_counter() - start:.0f} s)", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
