"""Stage `evaluate`: the trained student against the reference models on held-out data -> metrics/eval.json.

Fails (after writing the metrics) when Korean retrieval falls below the retrieval-only student by more than
`evaluate.regression_tolerance`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kosparse.config import load_section
from kosparse.evaluate import EvalConfig, load_eval_sets, run_evaluation

OUT = Path("metrics")


def main() -> int:
    """Evaluate ``models/student`` with the `evaluate` section; compare with ``metrics/eval_reference.json``."""
    from sentence_transformers.sparse_encoder import SparseEncoder

    cfg = load_section(EvalConfig, "evaluate")
    reference = json.loads((OUT / "eval_reference.json").read_text(encoding="utf-8"))
    result, examples = run_evaluation(SparseEncoder("models/student", device="cpu"), reference, load_eval_sets(cfg),
                                      cfg)
    (OUT / "eval.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (OUT / "activation_examples.md").write_text(examples, encoding="utf-8")
    s, b, reg = result["student"], result["baseline"], result["regression"]
    print(f"evaluate: Korean MRR@10 {s['korean']['RR@10']:.3f} (untrained {b['korean']['RR@10']:.3f}, "
          f"retrieval-only {reg['retrieval_only']:.3f}); ko->en MRR@10 {s['ko_en_heldout_sentences']['RR@10']:.3f} "
          f"(untrained {b['ko_en_heldout_sentences']['RR@10']:.3f}); English activation "
          f"{s['activation']['english_activation_rate']:.1%} "
          f"(untrained {b['activation']['english_activation_rate']:.1%})")
    if not reg["passed"]:
        print(f"evaluate: Korean {reg['measure']} fell {-reg['difference']:.3f} (± {reg['stderr']:.3f}) below the "
              f"retrieval-only student, more than evaluate.regression_tolerance = {reg['tolerance']}. The metrics "
              f"are in {OUT / 'eval.json'}; lower loss.lambda_xl or train.synonym_batch_ratio, or raise the "
              f"tolerance if the drop is within noise.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
