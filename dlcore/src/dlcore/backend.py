"""The one place layer math takes its array module from.

Layer code writes ``from dlcore.backend import xp`` and uses ``xp`` wherever it
would write ``np``.  NumPy is the only backend today; a CuPy backend can later
swap this module's ``xp`` without touching layer code.
"""

import numpy

xp = numpy

#: Default floating-point type of parameters and activations.
DEFAULT_DTYPE = numpy.float32
