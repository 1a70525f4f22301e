"""Run a snippet in a fresh interpreter and measure what it costs: peak memory growth and time.

Memory is the growth of the peak resident set (Linux's VmHWM, reset after the imports) over the
resident set then, so it counts every allocation (NumPy buffers, zlib, the JSON parser), not only
Python objects. Not ``ru_maxrss``: Linux carries that over from the parent across exec, so a
child of a large pytest process would report the parent's peak.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_RUNNER = r'''
import json, resource, sys, time
{setup}
def _status_mb(field):
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith(field + ":")).split()[1]) / 1024
try:  # reset the high-water mark to the current resident set
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:
    pass
_base = _status_mb("VmRSS")
def _peak_mb():
    return _status_mb("VmHWM")
if {limit_mb}:  # a cap on address space over what the imports mapped: runaway reads fail fast
    import re
    _vm = int(re.search(r"VmSize:\s+(\d+)", open("/proc/self/status").read()).group(1))
    resource.setrlimit(resource.RLIMIT_AS, ((_vm + {limit_mb} * 1024) * 1024,) * 2)
_results = []
for _arg in json.loads(sys.stdin.read()):
    _start = time.perf_counter()
    try:
        {call}
        _outcome = "ok"
    except Exception as _exc:
        _outcome = type(_exc).__name__ + ": " + str(_exc)[:300]
    _results.append({{"arg": _arg, "seconds": time.perf_counter() - _start,
                      "outcome": _outcome, "peak_growth_mb": _peak_mb() - _base}})
print(json.dumps({{"base_mb": _base, "results": _results}}))
'''


def run_bounded(setup: str, call: str, args: list, timeout: float = 300,
                limit_mb: int = 0) -> dict:
    """Run ``call`` (one statement using ``_arg``) once per element of ``args`` after ``setup``,
    in a subprocess (with ``limit_mb``, its address space may grow by at most that much after
    the imports, so code that would read without end fails with MemoryError); returns
    ``{"base_mb", "results": [{"arg", "seconds", "outcome", "peak_growth_mb"}]}``.
    ``peak_growth_mb`` is cumulative: the peak so far over the base."""
    code = _RUNNER.format(setup=textwrap.dedent(setup), call=call, limit_mb=int(limit_mb))
    proc = subprocess.run([sys.executable, "-c", code], input=json.dumps(args),
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"the measuring subprocess failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
