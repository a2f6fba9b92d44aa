"""Phase 2 training: the SPLADE student on retrieval rows plus Korean–English pairs in every batch.

sentence-transformers' ``SparseEncoderTrainer`` runs the loop; what it lacks is written here:

* **one dataset, two kinds of rows.** Retrieval rows (``query``, ``doc_0..doc_{n-1}``, teacher scores)
  and pair rows (``ko``, ``en``: a term pair or a parallel sentence) share one column layout; unused
  columns hold ``""``. The label column carries ``[kind, ko_row, en_row, score_0..score_{n-1}]``.
* :class:`MixedBatchSampler`: every batch holds ``round(synonym_batch_ratio · batch_size)`` pair rows
  and retrieval rows for the rest.
* ``CombinedLoss``: KD on the retrieval rows (sentence-transformers' ``SparseDistillKLDivLoss`` or
  ``SparseMarginMSELoss`` on the embeddings), FLOPS on documents and queries (``FlopsLoss``) with the
  SPLADE quadratic warm-up ``λ · min(1, (step / T))²``, and on the pair rows ``λ_xl`` ·
  :func:`~kosparse.losses.cross_lingual_kd` against the cached teacher embeddings and ``λ_syn`` ·
  :func:`~kosparse.losses.synonym_alignment` (term pairs only).
* :class:`SparsityCallback`: collapse guards a user can see — average non-zeros of probe queries and
  documents and the most frequent activated tokens across the probe set, per evaluation step.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from kosparse.losses.combined import KIND_RETRIEVAL, KIND_SENTENCE, KIND_TERM, CombinedLoss, LossConfig


@dataclass
class TrainConfig:
    """The ``train`` section.

    Attributes:
        steps: Optimiser steps.
        batch_size: Rows per batch.
        synonym_batch_ratio: Share of every batch filled with term pairs and parallel sentences.
        sentence_share: Share of the pair rows that are parallel sentences (the rest are term pairs).
        docs_per_row: Documents of a retrieval row used (positive first; ``n`` of the plan's 8).
        lr: Peak learning rate (linear warm-up and decay).
        warmup_ratio: Warm-up share of the steps.
        max_length: Token cap of every text (queries, documents, terms, sentences).
        eval_steps: Steps between evaluations (collapse guards) and checkpoints.
        heldout_share: Share of Korean terms (and of sentence pairs) kept out of training for evaluation.
        max_pairs: Most term pairs / sentence pairs used (seeded sample).
        probe_texts: Texts whose activations are logged at every evaluation.
        query_side: ``encoder`` (queries go through the student, with FLOPS ``lambda_q``) or
            ``inference_free`` (queries are IDF-weighted bags of their tokens — ``SparseStaticEmbedding``
            from ``idf.json``, frozen — as OpenSearch's two-phase ``neural_sparse`` search expects).
        seed: Seed of sampling and initialisation.
    """

    steps: int = 60
    batch_size: int = 16
    synonym_batch_ratio: float = 0.2
    sentence_share: float = 0.5
    docs_per_row: int = 4
    lr: float = 5e-5
    warmup_ratio: float = 0.1
    max_length: int = 128
    eval_steps: int = 20
    heldout_share: float = 0.1
    max_pairs: int = 4000
    probe_texts: list[str] = field(default_factory=lambda: ["머신러닝", "신경망", "검색 엔진", "데이터베이스"])
    query_side: str = "encoder"
    seed: int = 13

    def __post_init__(self) -> None:
        if self.query_side not in ("encoder", "inference_free"):
            raise ValueError(f"train.query_side must be 'encoder' or 'inference_free', got {self.query_side!r}")


def heldout(key: str, share: float) -> bool:
    """Deterministic split by key (a Korean term, or a sentence pair's Korean side): hash below ``share``."""
    h = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
    return h / 2**64 < share


@dataclass
class PairData:
    """Training and held-out pairs with the row of each text in the teacher cache."""

    texts: list[str]
    train_terms: list[tuple[str, str]]
    train_sentences: list[tuple[str, str]]
    heldout_terms: list[tuple[str, list[str]]]
    heldout_sentences: list[tuple[str, str]]


def load_pairs(terms: Path, parallel: Path, cfg: TrainConfig) -> PairData:
    """Term pairs (each Korean term with each English term) and sentence pairs, split and capped.

    The split is by Korean text: a Korean term is wholly in training or wholly held out.
    """
    rng = random.Random(cfg.seed)
    train_terms: list[tuple[str, str]] = []
    heldout_terms: list[tuple[str, list[str]]] = []
    for line in terms.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if heldout(row["ko"], cfg.heldout_share):
            heldout_terms.append((row["ko"], list(row["en"])))
        else:
            train_terms.extend((row["ko"], e) for e in row["en"])
    train_sentences: list[tuple[str, str]] = []
    heldout_sentences: list[tuple[str, str]] = []
    for line in parallel.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        (heldout_sentences if heldout(row["ko"], cfg.heldout_share) else train_sentences).append((row["ko"], row["en"]))
    for lst in (train_terms, train_sentences):
        rng.shuffle(lst)
    train_terms, train_sentences = train_terms[:cfg.max_pairs], train_sentences[:cfg.max_pairs]
    texts = sorted({t for pair in train_terms + train_sentences for t in pair})
    return PairData(texts, train_terms, train_sentences, heldout_terms, heldout_sentences)


def build_dataset(retrieval_rows: Any, pairs: PairData, cfg: TrainConfig) -> tuple[Any, int, int]:
    """One ``datasets.Dataset`` of retrieval and pair rows (see the module docstring for the layout).

    Returns:
        ``(dataset, n_retrieval, n_pairs)``; retrieval rows come first.
    """
    from datasets import Dataset

    n = cfg.docs_per_row
    row_of = {t: i for i, t in enumerate(pairs.texts)}
    cols: dict[str, list[Any]] = {"query": [], **{f"doc_{j}": [] for j in range(n)}, "ko": [], "en": [], "label": []}
    n_ret = 0
    for r in retrieval_rows:
        if len(r["docs"]) < n:
            continue
        cols["query"].append(r["query"])
        for j in range(n):
            cols[f"doc_{j}"].append(r["docs"][j])
        cols["ko"].append("")
        cols["en"].append("")
        cols["label"].append([float(KIND_RETRIEVAL), -1.0, -1.0, *map(float, r["scores"][:n])])
        n_ret += 1
    n_pairs = 0
    for kind, items in ((KIND_TERM, pairs.train_terms), (KIND_SENTENCE, pairs.train_sentences)):
        for ko, en in items:
            cols["query"].append("")
            for j in range(n):
                cols[f"doc_{j}"].append("")
            cols["ko"].append(ko)
            cols["en"].append(en)
            cols["label"].append([float(kind), float(row_of[ko]), float(row_of[en]), *([0.0] * n)])
            n_pairs += 1
    return Dataset.from_dict(cols), n_ret, n_pairs


class MixedBatchSampler(torch.utils.data.BatchSampler):
    """Batches with a fixed share of pair rows; the rest are retrieval rows.

    Rows ``[0, n_retrieval)`` are retrieval rows, the rest pair rows (term pairs first, then sentences).
    Each batch takes ``round(ratio · batch_size)`` pair rows (terms and sentences in the proportion
    ``sentence_share``) and fills up with retrieval rows; each pool is reshuffled when exhausted.

    Args:
        n_retrieval: Retrieval rows.
        n_terms: Term-pair rows.
        n_sentences: Sentence-pair rows.
        batch_size: Rows per batch.
        ratio: ``synonym_batch_ratio``.
        sentence_share: Share of the pair rows that are sentences.
        steps: Batches per epoch (the trainer's ``max_steps`` decides when to stop).
        seed: Shuffling seed.
    """

    def __init__(self, n_retrieval: int, n_terms: int, n_sentences: int, batch_size: int, ratio: float,
                 sentence_share: float, steps: int, seed: int) -> None:
        self.pools = {
            "retrieval": list(range(n_retrieval)),
            "term": list(range(n_retrieval, n_retrieval + n_terms)),
            "sentence": list(range(n_retrieval + n_terms, n_retrieval + n_terms + n_sentences)),
        }
        n_pair = round(ratio * batch_size) if (n_terms + n_sentences) else 0
        n_sent = round(sentence_share * n_pair) if n_sentences else 0
        n_sent = n_pair if not n_terms else n_sent
        self.take = {"sentence": n_sent, "term": n_pair - n_sent, "retrieval": batch_size - n_pair}
        if self.take["retrieval"] and not n_retrieval:
            raise ValueError("no retrieval rows to fill the batches with")
        self.batch_size, self.steps, self.seed, self.epoch = batch_size, steps, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Called by the trainer at every epoch (different shuffles per epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(self.seed * 1000 + self.epoch)
        queues: dict[str, list[int]] = {k: [] for k in self.pools}
        for _ in range(self.steps):
            batch: list[int] = []
            for name, k in self.take.items():
                for _ in range(k):
                    if not queues[name]:
                        fresh = rng.sample(self.pools[name], len(self.pools[name]))
                        taken = set(batch)  # rows already in this batch go to the front: popped last
                        queues[name] = [i for i in fresh if i in taken] + [i for i in fresh if i not in taken]
                    batch.append(queues[name].pop())
            yield batch


@dataclass
class SamplerFactory:
    """Hands the trainer a ready :class:`MixedBatchSampler` (picklable, unlike a lambda: checkpoints
    pickle the training arguments). The trainer's own arguments (dataset, batch size, ...) are unused:
    the sampler was built from the same values."""

    sampler: MixedBatchSampler

    def __call__(self, *args: Any, **kwargs: Any) -> MixedBatchSampler:
        """Return the sampler."""
        return self.sampler


def idf_vector(idf: dict[str, float], vocab: dict[str, int]) -> Tensor:
    """``idf.json`` as a weight per token id (tokens missing from the file get 0)."""
    weights = torch.zeros(max(vocab.values()) + 1)
    for token, i in vocab.items():
        weights[i] = float(idf.get(token, 0.0))
    return weights


def load_student(student: str, query_side: str, idf: dict[str, float] | None) -> Any:
    """The student as a ``SparseEncoder``; with ``inference_free`` a ``Router`` whose query route is a
    frozen ``SparseStaticEmbedding`` of the IDF weights and whose document route is the student."""
    from sentence_transformers.sparse_encoder import SparseEncoder

    device = None if torch.cuda.is_available() else "cpu"
    model = SparseEncoder(student, device=device)
    if query_side == "encoder":
        return model
    from sentence_transformers.sparse_encoder.modules import Router, SparseStaticEmbedding

    if idf is None:
        raise ValueError("train.query_side=inference_free needs idf.json (the idf stage)")
    static = SparseStaticEmbedding(tokenizer=model.tokenizer, weight=idf_vector(idf, model.tokenizer.get_vocab()),
                                   frozen=True)
    document: list[Any] = list(model.children())
    router = Router.for_query_document(query_modules=[static], document_modules=document)
    return SparseEncoder(modules=[router], device=device)


def activation_stats(model: Any, texts: list[str], top_k: int = 10) -> dict[str, Any]:
    """Average non-zeros and the most frequent top tokens of ``texts`` (the collapse guard)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        emb = model.encode(texts, convert_to_tensor=True, batch_size=16).to_dense()
    if was_training:
        model.train()
    nnz = (emb > 0).sum(dim=1).float()
    counts: Counter[str] = Counter()
    for row in model.decode(emb, top_k=top_k):
        counts.update(tok for tok, _ in row)
    return {"avg_nnz": float(nnz.mean()), "min_nnz": float(nnz.min()), "frequent_top_tokens": counts.most_common(10)}


@dataclass
class TrainReport:
    """What the ``train`` stage writes next to the model."""

    steps: int
    retrieval_rows: int
    term_pairs: int
    sentence_pairs: int
    heldout_terms: int
    heldout_sentences: int
    seconds: float
    final: dict[str, Any]
    history: list[dict[str, Any]]
    settings: dict[str, Any]

    def summary(self) -> str:
        """One line for the stage log."""
        q, d = self.final.get("query", {}), self.final.get("doc", {})
        return (f"train: {self.steps} steps in {self.seconds:.0f}s on {self.retrieval_rows:,} retrieval rows, "
                f"{self.term_pairs:,} term pairs, {self.sentence_pairs:,} sentence pairs; final avg nnz "
                f"query {q.get('avg_nnz', 0):.0f}, doc {d.get('avg_nnz', 0):.0f}")


def train_student(student: str, retrieval: Any, pairs: PairData, teacher_embeddings: np.ndarray, out_dir: Path,
                  cfg: TrainConfig, loss_cfg: LossConfig, metrics_dir: Path, probe_docs: list[str],
                  idf: dict[str, float] | None = None) -> TrainReport:
    """Train the student and save it to ``out_dir`` (a ``SparseEncoder`` folder).

    Args:
        student: Starting model (folder or hub id).
        retrieval: Retrieval rows (``query``, ``docs``, ``scores``; e.g. ``datasets.load_from_disk``).
        pairs: Term and sentence pairs (:func:`load_pairs`).
        teacher_embeddings: ``[len(pairs.texts), D]`` teacher embeddings of ``pairs.texts``.
        out_dir: Output folder of the final model.
        cfg: Training settings.
        loss_cfg: Loss settings.
        metrics_dir: dvclive folder (``dvcyaml=False``).
        probe_docs: Documents whose activations are logged next to ``cfg.probe_texts``.
        idf: ``idf.json`` weights, needed when ``cfg.query_side`` is ``inference_free``.
    """
    import time

    from dvclive import Live
    from sentence_transformers.sparse_encoder import SparseEncoderTrainer, SparseEncoderTrainingArguments
    from transformers import TrainerCallback

    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    model = load_student(student, cfg.query_side, idf)
    dataset, n_ret, n_pairs = build_dataset(retrieval, pairs, cfg)
    n_terms = len(pairs.train_terms)
    sampler = MixedBatchSampler(n_ret, n_terms, n_pairs - n_terms, cfg.batch_size, cfg.synonym_batch_ratio,
                                cfg.sentence_share, cfg.steps, cfg.seed)
    specials = list(model.tokenizer.all_special_ids)
    loss = CombinedLoss(model, loss_cfg, cfg.docs_per_row, torch.from_numpy(np.asarray(teacher_embeddings)), specials)
    history: list[dict[str, Any]] = []
    live = Live(str(metrics_dir), dvcyaml=False, save_dvc_exp=False)
    probes = {"query": list(cfg.probe_texts), "doc": probe_docs}

    class SparsityCallback(TrainerCallback):
        """Logs every loss term, learning rate and the collapse guards at each evaluation step."""

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None,
                   **kwargs: Any) -> None:
            parts = loss.pop_parts()
            extra = {k: v for k, v in (logs or {}).items() if k in ("learning_rate", "grad_norm")}
            for k, v in {**parts, **extra}.items():
                live.log_metric(f"train/{k}", float(v))
            done = {h["step"] for h in history}
            due = state.global_step % cfg.eval_steps == 0 or state.global_step >= cfg.steps
            if due and state.global_step not in done:  # the trainer logs the last step twice
                entry: dict[str, Any] = {"step": state.global_step, **parts}
                for name, texts in probes.items():
                    if texts:
                        stats = activation_stats(model, texts)
                        live.log_metric(f"probe/{name}_avg_nnz", stats["avg_nnz"])
                        entry[f"{name}_probe"] = stats
                history.append(entry)
            live.next_step()

    args = SparseEncoderTrainingArguments(
        output_dir=str(out_dir.parent / f".{out_dir.name}-checkpoints"), max_steps=cfg.steps,
        per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.lr, warmup_ratio=cfg.warmup_ratio,
        logging_steps=1, save_steps=cfg.eval_steps, save_total_limit=1, seed=cfg.seed, report_to="none",
        batch_sampler=cast(Any, SamplerFactory(sampler)),
        dataloader_drop_last=False, use_cpu=not torch.cuda.is_available(),
        router_mapping={"query": "query"} if cfg.query_side == "inference_free" else {},
        disable_tqdm=False)
    model.max_seq_length = cfg.max_length
    trainer = SparseEncoderTrainer(model=model, args=args, train_dataset=dataset, loss=loss,
                                   callbacks=[SparsityCallback()])
    trainer.train()
    model.save(str(out_dir))
    final = {name: activation_stats(model, texts) for name, texts in probes.items() if texts}
    live.end()
    report = TrainReport(cfg.steps, n_ret, n_terms, n_pairs - n_terms, len(pairs.heldout_terms),
                         len(pairs.heldout_sentences), round(time.perf_counter() - t0, 1), final, history,
                         {"train": asdict(cfg), "loss": asdict(loss_cfg)})
    (out_dir / "kosparse_train.json").write_text(json.dumps(asdict(report), indent=2, ensure_ascii=False) + "\n",
                                                 encoding="utf-8")
    return report


#: Settings that only act on pair rows: a retrieval-only run resets them to their defaults, so its output
#: depends only on the keys its DVC stage tracks.
PAIR_ONLY_TRAIN = ("synonym_batch_ratio", "sentence_share", "heldout_share", "max_pairs")
PAIR_ONLY_LOSS = ("lambda_xl", "lambda_syn", "teacher_temperature", "target_weight", "token_weight")


def _defaults(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for f in fields(obj):
        if f.name in names:
            out[f.name] = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[operator]
    return out


def retrieval_only(cfg: TrainConfig, loss_cfg: LossConfig) -> tuple[TrainConfig, LossConfig]:
    """The regression reference of the plan ("기존 한국어 retrieval 성능 유지"): the same run with
    ``synonym_batch_ratio = 0`` and ``lambda_xl = lambda_syn = 0`` (KD + FLOPS only).

    Every other pair-only setting is reset to its default: it has no effect without pair rows, and the
    ``train_retrieval_only`` stage does not track it.
    """
    cfg = replace(cfg, **{**_defaults(cfg, PAIR_ONLY_TRAIN), "synonym_batch_ratio": 0.0})
    loss_cfg = replace(loss_cfg, **{**_defaults(loss_cfg, PAIR_ONLY_LOSS), "lambda_xl": 0.0, "lambda_syn": 0.0})
    return cfg, loss_cfg


def run_train_stage(out_dir: Path, metrics_dir: Path, retrieval_only_run: bool = False,
                    xl_dir: Path = Path("data/synonyms/xl_teacher"),
                    rows_dir: Path = Path("data/neural_sparse_training/hf/train"),
                    idf_path: Path = Path("data/idf/idf.json")) -> TrainReport:
    """What the ``train`` and ``train_retrieval_only`` stages run, with the sections of ``params.yaml``.

    Args:
        out_dir: Output model folder.
        metrics_dir: dvclive folder.
        retrieval_only_run: Train the regression reference (:func:`retrieval_only`): no pair rows, no
            cross-lingual losses, and no read of the ``xl_teacher`` cache.
        xl_dir: ``xl_teacher`` output (``pairs.json``, ``embeddings.npy``).
        rows_dir: Training rows (``datasets.save_to_disk`` folder).
        idf_path: ``idf.json``, read when ``train.query_side`` is ``inference_free``.
    """
    from datasets import load_from_disk

    from kosparse.config import load_section, read_params
    from kosparse.student import StudentConfig

    params = read_params()
    student = load_section(StudentConfig, "student", params)
    cfg = load_section(TrainConfig, "train", params)
    loss = load_section(LossConfig, "loss", params)
    if retrieval_only_run:
        cfg, loss = retrieval_only(cfg, loss)
        pairs = PairData([], [], [], [], [])
        emb = np.zeros((0, 1), dtype=np.float32)
    else:
        raw = json.loads((xl_dir / "pairs.json").read_text(encoding="utf-8"))
        pairs = PairData(raw["texts"], [tuple(p) for p in raw["train_terms"]],
                         [tuple(p) for p in raw["train_sentences"]],
                         [(k, list(e)) for k, e in raw["heldout_terms"]], [tuple(p) for p in raw["heldout_sentences"]])
        emb = np.load(xl_dir / "embeddings.npy").astype(np.float32)
    retrieval = load_from_disk(str(rows_dir))
    probe_docs = [r["docs"][0] for r in retrieval.select(range(min(8, len(retrieval))))]
    start = "models/student_init" if student.build != "none" else student.model
    idf = json.loads(idf_path.read_text(encoding="utf-8")) if cfg.query_side == "inference_free" else None
    return train_student(start, retrieval, pairs, emb, out_dir, cfg, loss, metrics_dir, probe_docs, idf)
