"""Stage `train`: the SPLADE student on mixed batches -> models/student (+ dvclive metrics/train)."""

from __future__ import annotations

import sys
from pathlib import Path

from kosparse.train import run_train_stage


def main() -> int:
    """Train with the `student`, `train` and `loss` sections of params.yaml."""
    report = run_train_stage(Path("models/student"), Path("metrics/train"))
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
