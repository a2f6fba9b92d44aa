"""kosparse: Korean Wikipedia / Namuwiki -> OpenSearch neural sparse training data (a DVC + Hydra pipeline)."""

from __future__ import annotations

__version__ = "0.1.0"
