"""Cross-lingual losses for the SPLADE student (what sentence-transformers' sparse losses lack).

Retrieval (KD with ``SparseDistillKLDivLoss`` / ``SparseMarginMSELoss``) and FLOPS (``SpladeLoss``) come
from sentence-transformers; this module adds the two phase-2 terms and their combination. Each loss
has a functional core on plain tensors (unit-tested on hand-computable values) and an ``nn.Module``
that encodes texts with the student first.

Notation: ``s(x)`` is the student's sparse vector of text ``x`` (SPLADE: max-pooled
``log(1 + relu(logits))``, shape ``[vocab]``); ``t(x)`` is the teacher's dense, L2-normalised embedding.
"""

from __future__ import annotations

from typing import Any

import torch
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


def synonym_alignment(student_ko: Tensor, student_en: Tensor, en_token_mask: Tensor, target_weight: float = 1.0,
                      token_weight: float = 1.0) -> Tensor:
    r"""Synonym alignment: ``sparse(ko)`` points where ``sparse(en)`` points and activates the English tokens.

    .. math::
        \mathcal{L} = \frac{1}{B} \sum_i \Big[ 1 - \cos\big(s(ko_i), s(en_i)\big)
        + \beta \cdot \frac{\sum_t m_{it} \max\big(0,\ w - s(ko_i)_t\big)}{\max(1, \sum_t m_{it})} \Big]

    where ``m_{it}`` is 1 for the tokens of the English synonym ``en_i`` (its own word pieces, special
    tokens excluded), ``w`` the target weight and ``β`` = ``token_weight``. The second term is what
    makes "머신러닝" activate ``machine`` and ``learning``: a hinge that is zero once every English
    token carries at least weight ``w`` in the Korean vector.

    Args:
        student_ko: ``[B, V]`` sparse vectors of Korean terms.
        student_en: ``[B, V]`` sparse vectors of their English synonyms.
        en_token_mask: ``[B, V]`` 0/1 mask of each English synonym's token ids.
        target_weight: ``w``.
        token_weight: ``β``.

    Returns:
        The scalar loss.
    """
    cos = F.cosine_similarity(student_ko, student_en, dim=1, eps=1e-8)
    mask = en_token_mask.to(student_ko.dtype)
    hinge = (F.relu(target_weight - student_ko) * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    return ((1.0 - cos) + token_weight * hinge).mean()


def combined_loss(retrieval: Tensor, cross_lingual: Tensor | None, alignment: Tensor | None,
                  lambda_xl: float, lambda_syn: float) -> dict[str, Tensor]:
    r"""``retrieval + λ_xl · cross-lingual KD + λ_syn · alignment`` and its parts.

    ``retrieval`` already holds KD and FLOPS (``SpladeLoss``). A batch without term or sentence pairs
    (``None``) contributes no cross-lingual terms.

    Returns:
        ``{"loss", "retrieval", "cross_lingual", "alignment"}`` (the last two 0 when absent).
    """
    zero = retrieval.new_zeros(())
    xl = cross_lingual if cross_lingual is not None else zero
    syn = alignment if alignment is not None else zero
    return {"loss": retrieval + lambda_xl * xl + lambda_syn * syn, "retrieval": retrieval.detach(),
            "cross_lingual": xl.detach(), "alignment": syn.detach()}


def english_token_mask(tokenizer: Any, texts: list[str], vocab_size: int, device: torch.device | str = "cpu") -> Tensor:
    """``[B, V]`` mask of the token ids of each text (special tokens excluded)."""
    mask = torch.zeros(len(texts), vocab_size, device=device)
    specials = set(getattr(tokenizer, "all_special_ids", []))
    for i, text in enumerate(texts):
        ids = [t for t in tokenizer(text, add_special_tokens=False)["input_ids"] if t not in specials]
        if ids:
            mask[i, torch.as_tensor(ids, device=device)] = 1.0
    return mask


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


class SynonymAlignmentLoss(nn.Module):
    """:func:`synonym_alignment` on texts: encodes both sides with the student.

    Args:
        model: A sentence-transformers ``SparseEncoder``.
        target_weight: Weight every English token should reach in the Korean vector.
        token_weight: Weight of the token term against the cosine term.
    """

    def __init__(self, model: nn.Module, target_weight: float = 1.0, token_weight: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.target_weight = target_weight
        self.token_weight = token_weight

    def forward(self, ko_features: dict[str, Tensor], en_features: dict[str, Tensor], en_token_mask: Tensor) -> Tensor:
        """Loss for tokenized Korean terms, their English synonyms and the synonyms' token masks."""
        s_ko = self.model(ko_features)["sentence_embedding"]
        s_en = self.model(en_features)["sentence_embedding"]
        return synonym_alignment(s_ko, s_en, en_token_mask, self.target_weight, self.token_weight)
