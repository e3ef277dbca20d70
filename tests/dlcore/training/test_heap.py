"""dlcore.heap: after keep_freed_memory, a step's freed large arrays are reused, not faulted anew.

Counted in page faults (getrusage), in a fresh interpreter for each side: nothing is timed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FAULTS_OF_REPEATED_ARRAYS = """
import json, resource, sys
import numpy as np
from dlcore.heap import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
for _ in range(3):  # warm: the heap reaches its high-water mark
    a = np.ones((64, 32, 32, 32), np.float32); b = np.ones_like(a); del a, b
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):  # 8 MB arrays, made and freed as a training step does
    a = np.ones((64, 32, 32, 32), np.float32); b = np.ones_like(a); del a, b
print(json.dumps({"applied": applied, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _faults(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", FAULTS_OF_REPEATED_ARRAYS, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")
def test_freed_large_arrays_are_reused_instead_of_faulted_again():
    kept, default = _faults("keep"), _faults("default")
    assert kept["applied"] is True
    # 40 arrays of 8 MB fault some 20,000 times when malloc gives them back (fewer than their
    # 80,000 pages where the kernel maps huge pages); kept, they fault no more.
    assert default["faults"] > 5_000
    assert kept["faults"] < default["faults"] / 20, (kept, default)


def test_keep_freed_memory_is_applied_once_and_answers_the_same_after():
    from dlcore.heap import keep_freed_memory

    first = keep_freed_memory()
    assert keep_freed_memory() is first
