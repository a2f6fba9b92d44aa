"""Stage `validate`: data/neural_sparse_training -> validation_report.json; exits 1 on any violation."""

from __future__ import annotations

import sys
from pathlib import Path

from kosparse.config import load_section, read_params
from kosparse.mine import MineConfig
from kosparse.validate import ValidateConfig, ValidationError, raise_on_violations, validate

OUT = Path("data/neural_sparse_training")


def main() -> int:
    """Run validate with the `validate` and `mine` sections of params.yaml."""
    params = read_params()
    cfg = load_section(ValidateConfig, "validate", params)
    mine_cfg = load_section(MineConfig, "mine", params)
    report = validate(OUT, OUT / "validation_report.json", mine_cfg.bands, mine_cfg.positive_score, cfg)
    try:
        raise_on_violations(report)
    except ValidationError as exc:
        print(f"validate: FAILED, see {OUT / 'validation_report.json'}: {exc}", file=sys.stderr)
        return 1
    survive = ", ".join(f"k={k}: {g['rows_surviving']:,}/{g['rows']:,} rows"
                        for k, g in report.grouping.items())
    print(f"validate: ok, {report.rows['train']:,} train + {report.rows['val']:,} val rows ({survive})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
