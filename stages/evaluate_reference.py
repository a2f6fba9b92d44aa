"""Stage `evaluate_reference`: the untrained and the retrieval-only student -> metrics/eval_reference.json.

They do not change in a sweep of the cross-lingual settings, so they are evaluated once and cached.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kosparse.config import load_section
from kosparse.evaluate import EvalConfig, load_eval_sets, reference_evaluation


def main() -> int:
    """Evaluate ``models/student_init`` and ``models/student_retrieval_only`` with the `evaluate` section."""
    from sentence_transformers.sparse_encoder import SparseEncoder

    cfg = load_section(EvalConfig, "evaluate")
    sets = load_eval_sets(cfg)
    ref = reference_evaluation(SparseEncoder("models/student_init", device="cpu"),
                               SparseEncoder("models/student_retrieval_only", device="cpu"), sets, cfg)
    out = Path("metrics/eval_reference.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(ref, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"evaluate_reference: Korean MRR@10 untrained {ref['baseline']['korean']['RR@10']:.3f}, "
          f"retrieval-only {ref['retrieval_only']['korean']['RR@10']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
