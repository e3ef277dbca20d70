"""The training workers: the Celery app (``workers.celery_app``) and its one task.

Importing the package sizes the BLAS pools before anything loads NumPy: OpenBLAS reads
``OPENBLAS_NUM_THREADS`` once, when it is loaded, while a threadpoolctl limit reaches only
the libraries loaded when it is set (one set before NumPy is imported does nothing).  The
task applies threadpoolctl too, in the process that trains; ``DLJOBS_BLAS_THREADS`` wins
over an inherited value, so N workers on N cores never run 2N busy BLAS threads.
"""

from __future__ import annotations

import os
import sys

from dljobs.settings import get_settings

# Once NumPy is loaded they are too late here (and would only leak into child processes).
if "numpy" not in sys.modules:
    os.environ.update(get_settings().blas_env())
