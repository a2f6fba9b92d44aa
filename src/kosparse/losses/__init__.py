"""Losses of the phase-2 student, one module each (formulas in the docstrings, tests in tests/test_losses.py).

* :mod:`kosparse.losses.cross_lingual` — ``CrossLingualKDLoss``
* :mod:`kosparse.losses.synonym_alignment` — ``SynonymAlignmentLoss``
* :mod:`kosparse.losses.combined` — ``CombinedLoss`` (retrieval KD + FLOPS + both of the above)
"""

from kosparse.losses.combined import CombinedLoss, LossConfig, combined_loss
from kosparse.losses.cross_lingual import CrossLingualKDLoss, cross_lingual_kd
from kosparse.losses.synonym_alignment import SynonymAlignmentLoss, english_token_mask, synonym_alignment

__all__ = ["CombinedLoss", "CrossLingualKDLoss", "LossConfig", "SynonymAlignmentLoss", "combined_loss",
           "cross_lingual_kd", "english_token_mask", "synonym_alignment"]
