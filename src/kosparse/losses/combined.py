"""``CombinedLoss`` = retrieval KD + FLOPS (quadratic warm-up) + ``λ_xl`` · cross-lingual KD + ``λ_syn`` · alignment.

Retrieval KD (``SparseDistillKLDivLoss`` / ``SparseMarginMSELoss``) and FLOPS (``FlopsLoss``) are
sentence-transformers' own, applied to embeddings; the cross-lingual terms are
:mod:`kosparse.losses.cross_lingual` and :mod:`kosparse.losses.synonym_alignment`. The batch layout (one
dataset, retrieval and pair rows, label ``[kind, ko_row, en_row, scores...]``) is described in
:mod:`kosparse.train`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from kosparse.losses.cross_lingual import cross_lingual_kd
from kosparse.losses.synonym_alignment import synonym_alignment, token_mask

KIND_RETRIEVAL, KIND_TERM, KIND_SENTENCE = 0, 1, 2


@dataclass
class LossConfig:
    """The ``loss`` section.

    Attributes:
        retrieval: ``kl`` (``SparseDistillKLDivLoss``) or ``marginmse`` (``SparseMarginMSELoss``).
        temperature: KD temperature (``kl``) and the student temperature of the cross-lingual KD.
        teacher_temperature: Temperature of the teacher's cosines in the cross-lingual KD.
        lambda_d: FLOPS weight on documents.
        lambda_q: FLOPS weight on queries.
        T: Steps of the quadratic FLOPS warm-up.
        lambda_xl: Weight of the cross-lingual KD (the plan's 0.1).
        lambda_syn: Weight of the synonym alignment.
        target_weight: Weight every English synonym token should reach in the Korean vector.
        token_weight: Weight of the token hinge inside the alignment loss.
    """

    retrieval: str = "kl"
    temperature: float = 1.0
    teacher_temperature: float = 0.05
    lambda_d: float = 1e-3
    lambda_q: float = 1e-3
    T: int = 50
    lambda_xl: float = 0.1
    lambda_syn: float = 0.1
    target_weight: float = 1.0
    token_weight: float = 1.0


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




def _subset(features: dict[str, Any], rows: Tensor) -> dict[str, Any]:
    """Rows of a tokenized batch, trimmed to the longest remaining sequence (routing keys kept)."""
    out: dict[str, Any] = {k: v[rows] for k, v in features.items() if isinstance(v, Tensor) and v.dim() >= 1}
    if "attention_mask" in out and out["attention_mask"].numel():
        width = int(out["attention_mask"].sum(dim=1).max().item())
        out = {k: (v[:, :width] if v.dim() == 2 else v) for k, v in out.items()}
    out.update({k: v for k, v in features.items() if not isinstance(v, Tensor)})  # e.g. the router's "task"
    return out


class CombinedLoss(nn.Module):
    """Retrieval KD + FLOPS (with warm-up) + ``λ_xl`` cross-lingual KD + ``λ_syn`` synonym alignment.

    Args:
        model: The ``SparseEncoder`` student.
        cfg: Loss settings.
        docs_per_row: Documents per retrieval row.
        teacher_embeddings: ``[N, D]`` cached teacher embeddings of the pair texts (L2-normalised).
        special_ids: Token ids never counted as an English synonym's tokens.
    """

    def __init__(self, model: nn.Module, cfg: LossConfig, docs_per_row: int, teacher_embeddings: Tensor,
                 special_ids: list[int]) -> None:
        super().__init__()
        from sentence_transformers.sparse_encoder.losses import FlopsLoss, SparseDistillKLDivLoss, SparseMarginMSELoss

        self.model = model
        self.cfg = cfg
        self.n_docs = docs_per_row
        if cfg.retrieval == "kl":
            self.kd: Any = SparseDistillKLDivLoss(model, temperature=cfg.temperature)  # type: ignore[arg-type]
        elif cfg.retrieval == "marginmse":
            self.kd = SparseMarginMSELoss(model)  # type: ignore[arg-type]
        else:
            raise ValueError(f"loss.retrieval must be 'kl' or 'marginmse', got {cfg.retrieval!r}")
        self.flops: Any = FlopsLoss(model)  # type: ignore[arg-type]
        self.teacher: Tensor
        self.register_buffer("teacher", teacher_embeddings.float(), persistent=False)
        self.special_ids = special_ids
        self.step = 0
        self.parts: defaultdict[str, float] = defaultdict(float)
        self.parts_n = 0

    def flops_weight(self, weight: float) -> float:
        """``weight · min(1, (step / T))²``: the SPLADE papers' quadratic warm-up."""
        return weight * min(1.0, (self.step / max(self.cfg.T, 1)) ** 2)

    def _encode(self, features: dict[str, Tensor]) -> Tensor:
        return self.model(features)["sentence_embedding"]

    def forward(self, sentence_features: list[dict[str, Tensor]], labels: Tensor) -> Tensor:
        """Loss of one mixed batch (features in column order: query, docs, ko, en)."""
        kind = labels[:, 0].long()
        n = self.n_docs
        retrieval = labels.new_zeros(())
        xl: Tensor | None = None
        syn: Tensor | None = None
        ret = torch.nonzero(kind == KIND_RETRIEVAL).flatten()
        if ret.numel():
            q = self._encode(_subset(sentence_features[0], ret))
            docs = [self._encode(_subset(sentence_features[1 + j], ret)) for j in range(n)]
            kd = self.kd.compute_loss_from_embeddings([q, *docs], labels[ret, 3:3 + n])
            doc_all = torch.cat(docs)
            flops_d = self.flops.compute_loss_from_embeddings(doc_all)
            flops_q = self.flops.compute_loss_from_embeddings(q)
            retrieval = retrieval + kd + self.flops_weight(self.cfg.lambda_d) * flops_d
            if q.requires_grad:  # an inference-free query side is frozen: no FLOPS to pay on it
                retrieval = retrieval + self.flops_weight(self.cfg.lambda_q) * flops_q
            self.parts["kd"] += float(kd.detach())
            self.parts["flops_d"] += float(flops_d.detach())
            self.parts["flops_q"] += float(flops_q.detach())
            self.parts["nnz_query"] += float((q > 0).sum(dim=1).float().mean())
            self.parts["nnz_doc"] += float((doc_all > 0).sum(dim=1).float().mean())
        pair = torch.nonzero(kind != KIND_RETRIEVAL).flatten()
        if pair.numel():
            ko_f = _subset(sentence_features[1 + n], pair)
            en_f = _subset(sentence_features[2 + n], pair)
            s_ko, s_en = self._encode(ko_f), self._encode(en_f)
            t_ko = self.teacher[labels[pair, 1].long()]
            t_en = self.teacher[labels[pair, 2].long()]
            xl = cross_lingual_kd(s_ko, s_en, t_ko, t_en, self.cfg.temperature, self.cfg.teacher_temperature)
            self.parts["cross_lingual"] += float(xl.detach())
            terms = torch.nonzero(kind[pair] == KIND_TERM).flatten()
            if terms.numel():
                mask = token_mask(en_f["input_ids"][terms], en_f["attention_mask"][terms], s_en.shape[1],
                                  self.special_ids)
                syn = synonym_alignment(s_ko[terms], s_en[terms], mask, self.cfg.target_weight, self.cfg.token_weight)
                self.parts["alignment"] += float(syn.detach())
        total = combined_loss(retrieval, xl, syn, self.cfg.lambda_xl, self.cfg.lambda_syn)["loss"]
        if self.training:
            self.step += 1
        self.parts["loss"] += float(total.detach())
        self.parts_n += 1
        return total

    def pop_parts(self) -> dict[str, float]:
        """Mean of each loss term since the last call (for logging)."""
        out = {k: v / max(self.parts_n, 1) for k, v in self.parts.items()}
        self.parts, self.parts_n = defaultdict(float), 0
        return out
