"""``CrossLingualKDLoss``: the student's ko→en similarities follow the teacher's (formula below)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def cross_lingual_kd(student_ko: Tensor, student_en: Tensor, teacher_ko: Tensor, teacher_en: Tensor,
                     temperature: float = 1.0, teacher_temperature: float = 0.05) -> Tensor:
    r"""Cross-lingual distillation: the student's ko→en similarities follow the teacher's.

    For a batch of ``B`` Korean texts and ``B`` English texts (terms or sentences; row ``i`` of each
    side is a translation pair, the rest are in-batch negatives):

    .. math::
        S_{ij} = s(ko_i) \cdot s(en_j), \qquad T_{ij} = t(ko_i) \cdot t(en_j)

        \mathcal{L} = \frac{1}{B} \sum_i \mathrm{KL}\big(\mathrm{softmax}(T_{i\cdot}/\tau_t)\;\|\;
        \mathrm{softmax}(S_{i\cdot}/\tau)\big)

    The teacher's cosines live in a narrow range (e5: 0.7–0.9), so they get their own, small
    temperature ``teacher_temperature``; the student's dot products are unbounded and use ``temperature``.

    Args:
        student_ko: ``[B, V]`` sparse vectors of the Korean texts.
        student_en: ``[B, V]`` sparse vectors of the English texts.
        teacher_ko: ``[B, D]`` teacher embeddings of the Korean texts (L2-normalised).
        teacher_en: ``[B, D]`` teacher embeddings of the English texts.
        temperature: Student temperature ``τ``.
        teacher_temperature: Teacher temperature ``τ_t``.

    Returns:
        The scalar loss (batch mean of the KL divergences).
    """
    student_scores = student_ko @ student_en.T / temperature
    teacher_scores = teacher_ko @ teacher_en.T / teacher_temperature
    target = F.softmax(teacher_scores, dim=1)
    return F.kl_div(F.log_softmax(student_scores, dim=1), target, reduction="batchmean")


class CrossLingualKDLoss(nn.Module):
    """:func:`cross_lingual_kd` on texts: encodes both sides with the student.

    Args:
        model: A sentence-transformers ``SparseEncoder``.
        temperature: Student temperature.
        teacher_temperature: Teacher temperature.
    """

    def __init__(self, model: nn.Module, temperature: float = 1.0, teacher_temperature: float = 0.05) -> None:
        super().__init__()
        self.model = model
        self.temperature = temperature
        self.teacher_temperature = teacher_temperature

    def forward(self, ko_features: dict[str, Tensor], en_features: dict[str, Tensor], teacher_ko: Tensor,
                teacher_en: Tensor) -> Tensor:
        """Loss for tokenized Korean and English batches and their cached teacher embeddings."""
        s_ko = self.model(ko_features)["sentence_embedding"]
        s_en = self.model(en_features)["sentence_embedding"]
        return cross_lingual_kd(s_ko, s_en, teacher_ko, teacher_en, self.temperature, self.teacher_temperature)
