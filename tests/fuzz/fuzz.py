"""Run one fuzz target under atheris (coverage-guided, libFuzzer underneath).

    python tests/fuzz/fuzz.py TARGET [libFuzzer options] [NEW_INPUTS_DIR] [SEED_DIRS...]

TARGET is ``load``, ``idx`` or ``model_json`` (see targets.py). For example, an hour on
``ag.load`` that keeps what it finds in /tmp/found and starts from the seed corpus::

    python tests/fuzz/fuzz.py load -max_total_time=3600 -timeout=5 -rss_limit_mb=2048 \\
        /tmp/found tests/fuzz/corpus/load

A crash or a refusal of the wrong type stops the run and writes the input to ``crash-*``;
add it to ``tests/fuzz/corpus/TARGET/`` once fixed, so ``tests/test_fuzz_corpus.py`` keeps it.
"""
from __future__ import annotations

import gc
import sys
import types
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

import targets  # noqa: E402


def _instrument() -> int:
    """Add coverage instrumentation to every Python function of autograd and the targets, in
    place. Not instrument_imports: an editable install loads autograd through its own finder,
    which that import hook does not see. (Cython and C++ code is not traced.)"""
    count = 0
    for obj in gc.get_objects():
        module = getattr(obj, "__module__", None) or ""
        if isinstance(obj, types.FunctionType) and (
                module == "targets" or module == "autograd" or module.startswith("autograd.")):
            atheris.instrument_func(obj)
            count += 1
    return count


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in targets.TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(targets.TARGETS)}}} [libFuzzer options] "
                 f"[corpus dirs]")
    name = sys.argv.pop(1)
    here = Path(__file__).resolve().parent
    args = list(sys.argv)
    dirs = [a for a in args[1:] if not a.startswith("-")]
    if dirs:  # libFuzzer writes new inputs into the first corpus directory: make it
        Path(dirs[0]).mkdir(parents=True, exist_ok=True)
    if name in ("load", "model_json") and not any(a.startswith("-dict=") for a in args):
        args.insert(1, f"-dict={here / 'json.dict'}")
    print(f"INFO: instrumented {_instrument()} functions of autograd", file=sys.stderr)
    atheris.Setup(args, targets.TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
