"""The one error type for bad configurations, and its many-field sibling for specs."""

from __future__ import annotations


class ConfigError(ValueError):
    """A component configuration that cannot work.

    ``field`` names the parameter at fault (a dotted path where the error is
    nested, e.g. ``model.layers[2].size``) and the message states the rule that
    broke, with the numbers: ``conv2d: output width (32 - 5 + 2*0)/2 + 1 = 14.5
    is not a whole number; change size, stride or pad``.
    """

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)

    def at(self, prefix: str) -> ConfigError:
        """The same error with ``prefix`` prepended to its field path."""
        if not prefix:
            return self
        field = f"{prefix}.{self.field}" if self.field else prefix
        if self.field.startswith("["):
            field = f"{prefix}{self.field}"
        return ConfigError(field, self.message)


class SpecError(ValueError):
    """A job spec with one or more problems, each a ``ConfigError`` naming its field."""

    def __init__(self, errors: list[ConfigError]):
        self.errors = list(errors)
        super().__init__("; ".join(str(e) for e in self.errors))
