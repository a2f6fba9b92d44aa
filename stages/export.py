"""Stage `export`: models/student -> models/export (OpenSearch SPARSE_ENCODING / SPARSE_TOKENIZE zips)."""

from __future__ import annotations

import sys
from pathlib import Path

from kosparse.config import load_section
from kosparse.export import ExportConfig, export_student


def main() -> int:
    """Export with the `export` section; fails when TorchScript and PyTorch outputs differ beyond tolerance."""
    cfg = load_section(ExportConfig, "export")
    report = export_student(Path("models/student"), Path("data/idf/idf.json"), Path("models/export"), cfg)
    p = report.parity
    print(f"export: parity max abs diff {max(p['max_abs_diff_batch'], p['max_abs_diff_single']):.1e} "
          f"(tolerance {cfg.parity_tolerance:.0e}) on {int(p['texts'])} texts; idf covers "
          f"{int(report.idf['covered']):,}/{int(report.idf['vocab']):,} tokens; "
          + ", ".join(f"{name} {body['model_content_size_in_bytes'] / 1e6:.1f} MB" for name, body in
                      report.files.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
