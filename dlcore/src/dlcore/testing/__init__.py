"""The conformance kit: the checks every component (built-in or plugin) must pass.

In a plugin's tests::

    from dlcore.testing import parametrize_with_checks

    @parametrize_with_checks([Swish])
    def test_swish_conforms(component, check):
        check(component)

or, outside pytest, ``check_component(Swish)`` (raises AssertionError listing
every failing check).  Each check is also a plain function
``check_xxx(component_cls, config)`` importable from here.
"""

from dlcore.testing.common import CheckSkipped
from dlcore.testing.component_checks import (
    check_initializer_draws,
    check_loss_contract,
    check_loss_gradient,
    check_loss_initial,
    check_optimizer_descends,
    check_optimizer_state,
    check_preprocessor,
    check_regularizer_gradient,
    check_schedule_monotone,
    check_schedule_values,
)
from dlcore.testing.distributions import plugin_distribution
from dlcore.testing.kit import (
    CHECKS_BY_KIND,
    Check,
    CheckResult,
    Outcome,
    all_check_names,
    check_component,
    checks_for,
    parametrize_with_checks,
    run_check,
    run_checks,
)
from dlcore.testing.layer_checks import (
    check_concurrent_evaluation,
    check_deterministic,
    check_float32,
    check_gradients,
    check_no_input_mutation,
    check_save_load,
    check_shape_inference,
    check_training_modes,
)
from dlcore.testing.model_checks import check_architecture_layers, check_dataset_load

__all__ = [
    "CHECKS_BY_KIND",
    "Check",
    "CheckResult",
    "CheckSkipped",
    "Outcome",
    "all_check_names",
    "check_architecture_layers",
    "check_component",
    "check_concurrent_evaluation",
    "check_dataset_load",
    "check_deterministic",
    "check_float32",
    "check_gradients",
    "check_initializer_draws",
    "check_loss_contract",
    "check_loss_gradient",
    "check_loss_initial",
    "check_no_input_mutation",
    "check_optimizer_descends",
    "check_optimizer_state",
    "check_preprocessor",
    "check_regularizer_gradient",
    "check_save_load",
    "check_schedule_monotone",
    "check_schedule_values",
    "check_schema",
    "check_shape_inference",
    "check_training_modes",
    "checks_for",
    "parametrize_with_checks",
    "plugin_distribution",
    "run_check",
    "run_checks",
]
