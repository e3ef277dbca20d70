"""dljobs-optuna: the ``tpe`` search method for dljobs sweeps, on Optuna's TPESampler.

Nothing registers on import: the ``dljobs.search_methods`` entry point in pyproject.toml
is the whole wiring.
"""
