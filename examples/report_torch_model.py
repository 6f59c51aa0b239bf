"""A user's torch model for ``specinterp report --model examples/report_torch_model.py:make``.

Takes 8×8 digits flattened to 64 features (as ``--data`` gives them or the default digits).
"""

import torch


def make() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10)
    ).eval()


def broken() -> torch.nn.Module:
    raise RuntimeError("this factory fails on purpose (used by the tests)")
