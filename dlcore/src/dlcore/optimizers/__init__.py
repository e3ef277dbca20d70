"""Update rules (CS231n ``optim.py`` style), one module per rule.

Every rule has the same signature::

    xxx_update(w, dw, slots, lr, **hyperparameters) -> None

- ``w``: a parameter array of any shape, updated IN PLACE.
- ``dw``: its gradient, same shape and dtype (not modified).
- ``slots``: a dict of the rule's per-parameter arrays (velocity, moments,
  step count), created on the first call and updated in place; the
  :class:`dlcore.component.Optimizer` keeps one per parameter key, and its
  ``state_dict`` saves them with checkpoints.
- ``lr``: the current learning rate (the schedule's value, not the config's).

Each optimizer class is a thin wrapper whose ``update(w, dw, slots, lr)``
calls its rule with the hyperparameters of its config.

Conventions against ``torch.optim`` (the tests check both):

- momentum and nesterov keep the CS231n velocity ``v = mu * v - lr * dw;
  w += v``.  torch keeps ``b = mu * b + dw; w -= lr * b``.  With a constant lr
  the two are identical (``v = -lr * b``); when the lr changes, ours applies
  each step's lr to the gradient that enters the velocity, torch applies the
  current lr to the whole accumulated buffer.
- adagrad equals torch's ``Adagrad(lr, eps=eps, lr_decay=0,
  initial_accumulator_value=0)``: eps added outside the square root.
- rmsprop equals torch's ``RMSprop(lr, alpha=decay_rate, eps=eps)``.
- adam equals torch's ``Adam(lr, betas=(beta1, beta2), eps=eps)``, bias-corrected.
"""
