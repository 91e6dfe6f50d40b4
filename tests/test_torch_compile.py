"""torch.compile: the generator traces into one graph, with the same outputs and ring gradient."""

from __future__ import annotations

import numpy as np
from conftest import require

torch = require("torch")
from torch import nn  # noqa: E402

from rpgcore.adapters import torch as rpg  # noqa: E402


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 3),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Conv2d(6, 4, 3),
        nn.Flatten(),
        nn.Linear(64, 3),
    )
    return rpg.rpgify(model, ring_size=70, seed=1)


def test_compiles_without_graph_breaks_and_matches_eager() -> None:
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    eager = _model()
    compiled_model = _model()
    # fullgraph=True fails on any graph break, the generator's included;
    # aot_eager traces forward and backward without a C++ toolchain.
    compiled = torch.compile(compiled_model, backend="aot_eager", fullgraph=True)
    out_eager = eager(x)
    out_compiled = compiled(x)
    # The same operations, traced: equal up to float32 reassociation in the graph.
    np.testing.assert_allclose(
        out_compiled.detach().numpy(), out_eager.detach().numpy(), rtol=1e-5, atol=1e-6
    )
    out_eager.square().sum().backward()
    out_compiled.square().sum().backward()
    np.testing.assert_allclose(
        compiled_model.rpg_ring_global.grad.numpy(),
        eager.rpg_ring_global.grad.numpy(),
        rtol=1e-5,
        atol=1e-6,
    )
