"""Hyperparameter search: the space a sweep explores and the methods that explore it.

- :mod:`dljobs.search.space`: spec paths (``optimizer.lr``, ``model.layers[3].p``) and
  domains (``choice``, ``uniform``, ``loguniform``, ``int``), parsed and applied to a spec;
- :mod:`dljobs.search.base`: the interface every search method implements (plugins too);
- :mod:`dljobs.search.registry`: methods found through the ``dljobs.search_methods``
  entry-point group, built-ins declared there like a third party's;
- :mod:`dljobs.search.grid`, :mod:`dljobs.search.random`, :mod:`dljobs.search.asha`: the built-ins.

Nothing here touches the database or Celery: the scheduler (:mod:`dljobs.sweeps`) does.
"""
