"""The offline SPLADE student: built from the offline teacher's encoder (no masked-LM head ships offline).

Recipe (RESOURCES.md): keep the teacher's first ``layers`` transformer layers; prune the 250k XLM-R
vocabulary to the pieces that matter — every Hangul piece, every piece seen when tokenizing the corpus
and the phase-2 English texts, and every single-character piece — keeping their Unigram scores so
the pruned tokenizer segments as the full one wherever it can; tie an MLM decoder to the pruned input
embeddings and initialise the head transform as identity (dense = I, bias 0) so the first logits are a
lexical prior (similarity of each position's state to each token's embedding) instead of noise.

The result is a ``BertForMaskedLM`` folder (``mlm/``) wrapped as a sentence-transformers
``SparseEncoder`` (``MLMTransformer`` + ``SpladePooling``: max over positions of ``log(1 + relu(logit))``).
Production uses ``opensearch-project/opensearch-neural-sparse-encoding-multilingual-v1`` instead
(``student=opensearch_multilingual``): the same interface, nothing built.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HANGUL_RANGE = ("\uac00", "\ud7a3")
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


@dataclass
class StudentConfig:
    """The ``student`` section.

    Attributes:
        name: Option name (``offline_e5_mlm`` or ``opensearch_multilingual``).
        build: ``e5_mlm`` builds ``models/student_init`` from the teacher; ``none`` uses ``model`` as is.
        model: Hub id or folder of the starting model (``models/student_init`` when built).
        layers: Teacher layers kept (``e5_mlm``).
        min_count: Least corpus count for a non-Hangul piece to be kept.
        max_vocab: Most pieces kept (most frequent first; Hangul pieces and specials always kept).
        max_length: Student's maximum sequence length.
        vocab_texts: Texts the vocabulary is counted on (``passages``, ``terms``, ``parallel``).
        active_fraction: Share of the vocabulary active per text before training (decoder bias).
    """

    name: str = "offline_e5_mlm"
    build: str = "e5_mlm"
    model: str = "models/student_init"
    layers: int = 2
    min_count: int = 2
    max_vocab: int = 30000
    max_length: int = 256
    vocab_texts: tuple[str, ...] = ("passages", "terms", "parallel")
    active_fraction: float = 0.01


def _is_hangul_piece(piece: str) -> bool:
    return any(HANGUL_RANGE[0] <= c <= HANGUL_RANGE[1] for c in piece)


def choose_vocabulary(tokenizer: Any, pieces: list[str], texts: Iterable[str], min_count: int,
                      max_vocab: int) -> list[int]:
    """Old ids of the pieces the student keeps, in the teacher's order.

    Always kept: the special tokens, every Hangul piece and every single-character piece seen.
    Then pieces seen at least ``min_count`` times, most frequent first, up to ``max_vocab`` in all.

    Args:
        tokenizer: The teacher's ``tokenizers.Tokenizer``.
        pieces: The teacher's Unigram pieces (index = id).
        texts: Texts to count pieces on.
        min_count: Least count of a counted piece.
        max_vocab: Size cap.
    """
    counts: Counter[int] = Counter()
    batch: list[str] = []
    for t in texts:
        batch.append(t)
        if len(batch) == 1024:
            for enc in tokenizer.encode_batch(batch, add_special_tokens=False):
                counts.update(enc.ids)
            batch = []
    for enc in tokenizer.encode_batch(batch, add_special_tokens=False):
        counts.update(enc.ids)
    always = {i for i, p in enumerate(pieces) if p in SPECIALS or _is_hangul_piece(p)}
    always |= {i for i in counts if len(pieces[i].lstrip("\u2581")) <= 1}
    ranked = [i for i, c in counts.most_common() if c >= min_count and i not in always]
    room = max(0, max_vocab - len(always))
    return sorted(always | set(ranked[:room]))


def pruned_tokenizer_json(spec: dict[str, Any], keep: list[int]) -> dict[str, Any]:
    """A copy of a Unigram ``tokenizer.json`` with only the ``keep`` pieces (ids renumbered in order)."""
    new = json.loads(json.dumps(spec))
    vocab = spec["model"]["vocab"]
    remap = {old: new_id for new_id, old in enumerate(keep)}
    new["model"]["vocab"] = [vocab[i] for i in keep]
    new["model"]["unk_id"] = remap[spec["model"]["unk_id"]]
    for tok in new.get("added_tokens", []):
        tok["id"] = remap[tok["id"]]
    post = new.get("post_processor") or {}
    for special in (post.get("special_tokens") or {}).values():
        special["ids"] = [remap[i] for i in special["ids"]]
    return new


def build_student(teacher_dir: Path, out_dir: Path, cfg: StudentConfig, texts: Iterable[str]) -> dict[str, Any]:
    """Build the offline student into ``out_dir`` (a ``SparseEncoder`` folder) and return its report.

    Args:
        teacher_dir: The offline teacher (a sentence-transformers folder with a ``BertModel``).
        out_dir: Output folder (replaced).
        cfg: Student settings.
        texts: Texts the vocabulary is chosen on.
    """
    import torch
    from safetensors.torch import load_file
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sparse_encoder import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling
    from tokenizers import Tokenizer
    from transformers import BertConfig, BertForMaskedLM

    spec = json.loads((teacher_dir / "tokenizer.json").read_text(encoding="utf-8"))
    pieces = [p for p, _ in spec["model"]["vocab"]]
    texts = list(texts)
    calib = texts[:: max(1, len(texts) // 256)][:256]  # spread over the corpus, for the bias calibration
    keep = choose_vocabulary(Tokenizer.from_str(json.dumps(spec)), pieces, texts, cfg.min_count, cfg.max_vocab)
    teacher_cfg = json.loads((teacher_dir / "config.json").read_text(encoding="utf-8"))
    state = load_file(str(teacher_dir / "model.safetensors"))
    prefix = "" if "embeddings.word_embeddings.weight" in state else "bert."
    pruned = pruned_tokenizer_json(spec, keep)
    special_id = {p: i for i, (p, _) in enumerate(pruned["model"]["vocab"]) if p in SPECIALS}
    inherited = {k: v for k, v in teacher_cfg.items() if k not in ("architectures", "transformers_version")}
    config = BertConfig(**{**inherited,
                           "vocab_size": len(keep), "num_hidden_layers": cfg.layers,
                           "pad_token_id": special_id["<pad>"], "bos_token_id": special_id["<s>"],
                           "eos_token_id": special_id["</s>"], "tie_word_embeddings": True,
                           "architectures": ["BertForMaskedLM"]})
    model = BertForMaskedLM(config)
    new_state: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        k = key[len(prefix):] if prefix and key.startswith(prefix) else key
        if k.startswith("encoder.layer."):
            if int(k.split(".")[2]) >= cfg.layers:
                continue
        elif k.startswith("pooler."):
            continue
        if k == "embeddings.word_embeddings.weight":
            value = value[torch.as_tensor(keep)]
        new_state["bert." + k] = value
    hidden = config.hidden_size
    new_state["cls.predictions.transform.dense.weight"] = torch.eye(hidden)
    new_state["cls.predictions.transform.dense.bias"] = torch.zeros(hidden)
    new_state["cls.predictions.transform.LayerNorm.weight"] = torch.ones(hidden)
    new_state["cls.predictions.transform.LayerNorm.bias"] = torch.zeros(hidden)
    new_state["cls.predictions.bias"] = torch.zeros(len(keep))
    missing, unexpected = model.load_state_dict(new_state, strict=False)
    missing = [m for m in missing if m not in ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")
               and "position_ids" not in m]
    if missing or unexpected:
        raise ValueError(f"student weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.tie_weights()
    shutil.rmtree(out_dir, ignore_errors=True)
    work = tempfile.TemporaryDirectory(prefix="kosparse-student-")
    mlm_dir = Path(work.name)
    (mlm_dir / "tokenizer.json").write_text(json.dumps(pruned, ensure_ascii=False), encoding="utf-8")
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if (teacher_dir / name).exists():
            shutil.copy2(teacher_dir / name, mlm_dir / name)
    bias = calibrate_bias(model, Tokenizer.from_str(json.dumps(pruned)), calib, cfg.active_fraction)
    with torch.no_grad():
        model.cls.predictions.bias.fill_(bias)
        model.cls.predictions.bias[list(special_id.values())] = -100.0  # special tokens never activate
    model.save_pretrained(mlm_dir)
    mlm = Transformer(str(mlm_dir), transformer_task="fill-mask", max_seq_length=cfg.max_length)
    encoder = SparseEncoder(modules=[mlm, SpladePooling(pooling_strategy="max", activation_function="log1p_relu",
                                                        embedding_dimension=len(keep))])
    encoder.save(str(out_dir))
    work.cleanup()
    n_hangul = sum(1 for i in keep if _is_hangul_piece(pieces[i]))
    report = {"vocab_size": len(keep), "hangul_pieces": n_hangul, "layers": cfg.layers, "decoder_bias": bias,
              "parameters": int(sum(p.numel() for p in model.parameters())), "teacher": str(teacher_dir),
              "max_length": cfg.max_length}
    (out_dir / "kosparse_student.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def calibrate_bias(model: Any, tokenizer: Any, texts: list[str], active_fraction: float) -> float:
    """A shared decoder bias so that about ``active_fraction`` of the vocabulary is active per text.

    With identity head weights every logit starts as the similarity of a position's state to a token's
    embedding, which is positive for most of the vocabulary (a dense vector); shifting all logits down by
    the ``1 - active_fraction`` quantile of each text's max-pooled logits makes the untrained student
    sparse from the first step, with the strongest lexical matches (the text's own tokens) on top.
    """
    import torch

    if not texts or active_fraction >= 1:
        return 0.0
    model.eval()
    quantiles = []
    with torch.no_grad():
        for t in texts:
            ids = torch.tensor([tokenizer.encode(t).ids[:256]])
            logits = model(input_ids=ids).logits[0].max(dim=0).values
            quantiles.append(float(torch.quantile(logits, 1 - active_fraction)))
    return -float(np.median(quantiles))


def vocabulary_texts(passages: Path | None, terms: Path | None, parallel: Path | None) -> Iterable[str]:
    """Texts for :func:`choose_vocabulary`: passage texts, both sides of term pairs and sentences."""
    if passages is not None and passages.exists():
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(passages, pre_buffer=False).iter_batches(columns=["text"], batch_size=4096):
            yield from batch.column(0).to_pylist()
    for path, keys in ((terms, ("ko", "en")), (parallel, ("ko", "en"))):
        if path is None or not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            for k in keys:
                v = row[k]
                yield from (v if isinstance(v, list) else [v])


def idf_weights(tokenizer: Any, vocab_size: int, texts: Iterable[str], specials: Iterable[int]) -> np.ndarray:
    """Inverse document frequency of every token id over ``texts`` (``log(1 + (N - df + .5)/(df + .5))``).

    The BM25 form keeps every weight positive; a token that never occurs gets the largest weight,
    special tokens get 0. This is what OpenSearch's inference-free ``SPARSE_TOKENIZE`` query side reads
    from ``idf.json``.
    """
    df = np.zeros(vocab_size, dtype=np.int64)
    n = 0
    batch: list[str] = []

    def flush(items: list[str]) -> None:
        for enc in tokenizer.encode_batch(items, add_special_tokens=False):
            ids = np.unique(np.asarray(enc.ids, dtype=np.int64))
            df[ids[ids < vocab_size]] += 1

    for t in texts:
        batch.append(t)
        n += 1
        if len(batch) == 1024:
            flush(batch)
            batch = []
    flush(batch)
    idf = np.log1p((n - df + 0.5) / (df + 0.5))
    idf[list(specials)] = 0.0
    return idf
