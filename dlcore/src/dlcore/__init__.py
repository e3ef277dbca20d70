"""dlcore: a NumPy deep-learning core, written in the style of the CS231n layer code.

Every layer, activation, loss, regularizer, optimizer, schedule, initializer,
preprocessor, architecture and dataset is a component found through Python entry
points (see :mod:`dlcore.registry`); built-ins register exactly like third parties.

Layout convention: everything a user sees is NCHW (datasets, specs, shapes,
``predict``).  Inside a model, image activations are kept NHWC, ``(N, H, W, C)``,
because a convolution then becomes one strided window copy plus one GEMM.  The
model converts once on the way in; layers only ever see the internal layout.
"""

from dlcore.errors import ConfigError, SpecError

__version__ = "0.1.0"

#: The plugin API version this dlcore implements.  A component declares the
#: version it targets in ``api_version``; a different major version is refused.
PLUGIN_API_VERSION = 1

__all__ = ["PLUGIN_API_VERSION", "ConfigError", "SpecError", "__version__"]
