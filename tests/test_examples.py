"""The reproduction script runs end to end (a short configuration) and writes its report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_reproduction_script_on_digits(tmp_path):
    pytest.importorskip("sklearn")
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "reproduce_headline.py"),
            "--dataset",
            "digits",
            "--seeds",
            "2",
            "--epochs",
            "3",
            "--eval",
            "40",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    report = (tmp_path / "reproduction-digits.md").read_text()
    assert "| FD(clean,noisy) |" in report and "| gmsi |" in report
    assert "L2 (κ_attr² ≥ r·e^(−H)) holds on every sample: True" in report
