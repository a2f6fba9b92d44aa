"""``SynonymAlignmentLoss``: ``sparse(ko)`` points where ``sparse(en)`` points and carries its tokens."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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


def token_mask(input_ids: Tensor, attention_mask: Tensor, vocab_size: int, special_ids: Iterable[int]) -> Tensor:
    """``[B, V]`` 0/1 mask of the token ids of each tokenized row (padding and special tokens excluded)."""
    valid = attention_mask.bool()
    for sid in special_ids:
        valid &= input_ids != sid
    mask = torch.zeros(input_ids.shape[0], vocab_size, device=input_ids.device)
    return mask.scatter_(1, input_ids.clamp(min=0, max=vocab_size - 1), valid.to(mask.dtype))


def english_token_mask(tokenizer: Any, texts: list[str], vocab_size: int, device: torch.device | str = "cpu") -> Tensor:
    """:func:`token_mask` of texts, tokenized without special tokens."""
    enc = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    return token_mask(enc["input_ids"].to(device), enc["attention_mask"].to(device), vocab_size,
                      getattr(tokenizer, "all_special_ids", []))


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
