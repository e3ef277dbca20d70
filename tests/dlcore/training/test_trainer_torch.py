"""dlcore and PyTorch trained from the same weights, data order and hyperparameters agree."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.spec import seed_generators
from dlcore.training import Callback, train

SPEC = {
    "dataset": {"type": "digits", "val_fraction": 0.2, "seed": 0, "preprocess": [{"type": "mean_image"}, {"type": "std"}]},
    "model": {"layers": [
        {"type": "affine", "units": 64}, {"type": "relu"},
        {"type": "affine", "units": 32}, {"type": "relu"},
        {"type": "affine", "units": 10},
    ]},
    "loss": {"type": "softmax"},
    "regularization": [{"type": "l2", "strength": 0.001}],
    "optimizer": {"type": "momentum", "lr": 0.05, "momentum": 0.9},
    "schedule": {"type": "constant"},
    "training": {"epochs": 2, "batch_size": 32, "seed": 5, "dtype": "float64"},
}
ITERATIONS = 50


class Capture(Callback):
    """Records the data and initial weights the trainer starts from, and every loss."""

    def __init__(self):
        self.losses = []

    def on_start(self, trainer):
        self.x = trainer.x_train.copy()
        self.y = trainer.y_train.copy()
        self.weights = {k: v.copy() for k, v in trainer.model.params().items()}

    def on_iteration(self, trainer, info):
        self.losses.append(info.loss)
        if info.iteration == ITERATIONS:
            trainer.request_stop("enough")


@pytest.mark.torch
def test_training_losses_agree_with_torch_for_50_iterations():
    torch = pytest.importorskip("torch")
    cap = Capture()
    train(SPEC, callbacks=[cap])
    assert len(cap.losses) == ITERATIONS

    x = torch.tensor(cap.x.reshape(len(cap.x), -1))
    y = torch.tensor(cap.y)
    linears = [torch.nn.Linear(a, b).double() for a, b in ((64, 64), (64, 32), (32, 10))]
    with torch.no_grad():
        for i, lin in zip((0, 2, 4), linears):
            lin.weight.copy_(torch.tensor(cap.weights[f"{i}.W"].T))
            lin.bias.copy_(torch.tensor(cap.weights[f"{i}.b"]))
    net = torch.nn.Sequential(linears[0], torch.nn.ReLU(), linears[1], torch.nn.ReLU(), linears[2])
    strength = SPEC["regularization"][0]["strength"]
    opt = torch.optim.SGD(
        [{"params": [l.weight for l in linears], "weight_decay": strength},
         {"params": [l.bias for l in linears], "weight_decay": 0.0}],
        lr=SPEC["optimizer"]["lr"], momentum=SPEC["optimizer"]["momentum"],
    )
    order = seed_generators(SPEC["training"]["seed"])["order"]
    bs = SPEC["training"]["batch_size"]
    torch_losses = []
    perm = order.permutation(len(x))
    pos = 0
    while len(torch_losses) < ITERATIONS:
        if pos >= len(x):
            perm, pos = order.permutation(len(x)), 0
        idx = torch.tensor(perm[pos : pos + bs])
        pos += bs
        opt.zero_grad()
        data_loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
        data_loss.backward()  # weight decay adds strength * W to the gradient, as our l2 does
        with torch.no_grad():  # our reported loss adds 0.5 * strength * sum W^2 before the update
            penalty = 0.5 * strength * sum(float((l.weight**2).sum()) for l in linears)
        opt.step()
        torch_losses.append(data_loss.item() + penalty)
    ours = np.array(cap.losses)
    ref = np.array(torch_losses)
    rel = np.abs(ours - ref) / np.abs(ref)
    assert rel.max() < 1e-6, (rel.argmax(), rel.max())
    assert ref[-1] < 0.5 * ref[0]  # it really trained
