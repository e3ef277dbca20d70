"""Draw docs/loss_curve.svg, the README's picture, from a real run of examples/digits_cnn.json.

Run: ``.venv/bin/python docs/loss_curve.py``.  A plain SVG polyline keeps the
docs free of a plotting dependency.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dlcore.training import train
from dlcore.training import Callback

HERE = Path(__file__).parent
W, H, PAD = 640, 260, 44


class Recorder(Callback):
    def __init__(self):
        self.iterations, self.losses, self.val = [], [], []

    def on_iteration(self, trainer, info):
        self.iterations.append(info.epoch)
        self.losses.append(info.loss)

    def on_epoch(self, trainer, info):
        self.val.append((info.epoch, info.val_accuracy))


def polyline(xs, ys, x_max, y_max, colour):
    pts = " ".join(
        f"{PAD + x / x_max * (W - 2 * PAD):.1f},{H - PAD - y / y_max * (H - 2 * PAD):.1f}" for x, y in zip(xs, ys)
    )
    return f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{pts}"/>'


def main() -> None:
    spec = json.loads((HERE.parent / "examples" / "digits_cnn.json").read_text())
    rec = Recorder()
    result = train(spec, callbacks=[rec])
    epochs = spec["training"]["epochs"]
    loss = np.asarray(rec.losses)
    # a running mean over 10 iterations shows the trend under the mini-batch noise
    smooth = np.convolve(loss, np.ones(10) / 10, mode="valid")
    y_max = float(np.ceil(loss.max() * 2) / 2)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="black"/>',
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{H - PAD}" stroke="black"/>',
        polyline(rec.iterations, loss, epochs, y_max, "#c8d7ea"),
        polyline(rec.iterations[9:], smooth, epochs, y_max, "#1f5fa8"),
        polyline([e for e, _ in rec.val], [a * y_max for _, a in rec.val], epochs, y_max, "#d9480f"),
        f'<text x="{W / 2}" y="{H - 10}" text-anchor="middle">epoch</text>',
        f'<text x="{PAD - 6}" y="{PAD}" text-anchor="end">{y_max:g}</text>',
        f'<text x="{PAD - 6}" y="{H - PAD}" text-anchor="end">0</text>',
        f'<text x="{W - PAD}" y="{PAD - 20}" text-anchor="end" fill="#1f5fa8">training loss (running mean)</text>',
        f'<text x="{W - PAD}" y="{PAD - 6}" text-anchor="end" fill="#d9480f">'
        f'validation accuracy (top = 1.0): final {result.metrics["val_accuracy"]:.3f}</text>',
        f'<text x="{PAD}" y="{PAD - 20}">examples/digits_cnn.json, {epochs} epochs, '
        f'{result.metrics["seconds"]:.1f} s on 1 CPU thread</text>',
        "</svg>",
    ]
    (HERE / "loss_curve.svg").write_text("\n".join(parts) + "\n")
    print(f"wrote docs/loss_curve.svg (val_accuracy {result.metrics['val_accuracy']:.3f})")


if __name__ == "__main__":
    main()
