"""Peer objects shared by the benchmark cases (imported lazily: peers are optional)."""

from __future__ import annotations

from typing import Any


def curvlinops_hessian(net: Any, x: Any, y: Any) -> Any:
    """curvlinops' ``HessianLinearOperator`` of the mean cross-entropy of ``net`` on one batch.

    Raises ImportError when curvlinops is not installed (see benchmarks/requirements.txt).
    """
    import torch
    from curvlinops import HessianLinearOperator

    return HessianLinearOperator(
        net,
        torch.nn.CrossEntropyLoss(),
        list(net.parameters()),
        [(x, y)],
        check_deterministic=False,
    )
