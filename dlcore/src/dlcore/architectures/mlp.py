"""Multi-layer perceptron: affine [batchnorm] activation [dropout], repeated, then class scores."""

from __future__ import annotations

from pydantic import Field

from dlcore.component import Architecture, Shape
from dlcore.config import Config


class MLPConfig(Config):
    hidden: list[int] | None = Field(
        None,
        description="Hidden layer sizes, e.g. [256, 128]; when absent, depth layers of width units.",
    )
    depth: int = Field(
        2, ge=0, le=64, description="Number of hidden layers (when hidden is absent)."
    )
    width: int = Field(
        64, ge=1, le=65536, description="Units per hidden layer (when hidden is absent)."
    )
    activation: str = Field(
        "relu", description="Registered activation after each hidden affine layer."
    )
    batchnorm: bool = Field(
        False,
        description="Batch normalization between each hidden affine layer and its activation.",
    )
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="Dropout probability after each activation (0: none)."
    )


class MLP(Architecture):
    """Fully connected network; image inputs are flattened by the first affine layer."""

    name = "mlp"
    summary = (
        "Multi-layer perceptron: affine-[batchnorm]-activation-[dropout] blocks, then class scores."
    )
    Config = MLPConfig
    examples = (
        {},
        {"hidden": [16, 8], "activation": "tanh", "batchnorm": True, "dropout": 0.2},
        {"depth": 0},
    )

    def hidden_sizes(self) -> list[int]:
        cfg = self.config
        return list(cfg.hidden) if cfg.hidden is not None else [cfg.width] * cfg.depth

    def layers(self, sample_shape: Shape, num_classes: int) -> list[dict]:
        cfg = self.config
        out: list[dict] = []
        for units in self.hidden_sizes():
            out.append({"type": "affine", "units": int(units)})
            if cfg.batchnorm:
                out.append({"type": "batchnorm"})
            out.append({"type": cfg.activation})
            if cfg.dropout > 0:
                out.append({"type": "dropout", "p": cfg.dropout})
        out.append({"type": "affine", "units": int(num_classes)})
        return out
