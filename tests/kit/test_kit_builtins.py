"""The kit over every registered component: built-ins and installed plugins alike.

One test per (component, check), ids like ``Conv2D-check_gradients``; a
component that fails to load gets one failing ``<group>.<name>-check_loads``.
"""

from __future__ import annotations

from dlcore.registry import default_registry
from dlcore.testing import parametrize_with_checks


@parametrize_with_checks(default_registry())
def test_installed_component_conforms(component, check):
    check(component)
