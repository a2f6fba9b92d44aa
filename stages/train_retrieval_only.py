"""Stage `train_retrieval_only`: the regression reference (KD + FLOPS, no pairs) -> models/student_retrieval_only."""

from __future__ import annotations

import sys
from pathlib import Path

from kosparse.train import run_train_stage


def main() -> int:
    """Train with the retrieval keys of `student`, `train` and `loss`; synonym_batch_ratio = lambda_xl = 0."""
    report = run_train_stage(Path("models/student_retrieval_only"), Path("metrics/train_retrieval_only"),
                             retrieval_only_run=True)
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
