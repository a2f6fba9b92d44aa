"""Benchmark: kosparse.embed vs plain sentence-transformers encode on real Korean passages (CPU).

Baseline (named, measured in the same run):
``SentenceTransformer(model).encode(["passage: " + text, ...], batch_size=32)``. Ours: ``embed_texts``
with the default ``EmbedConfig`` (``backend=auto``; ``--backends`` times others too). Prints texts/s
of each, the speed ratios, and the cosine agreement with the baseline.

    python bench/embed.py --model models/teacher -n 1000 --baseline-batch-sizes 32,4

By default passages are cut from the shared Korean Wikipedia sample (``../shared/data/kowiki``) with
``kosparse.chunk`` into ``bench/out/kowiki/passages.parquet`` first (reused afterwards);
``--passages`` takes any passages file instead. ``--baseline-batch-sizes 32,4`` also times the baseline
at 4 texts per batch (what our token cap gives ~450-token passages), to show how much of the gain is
batching and how much bf16.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kosparse.embed import EmbedConfig, Encoder, embed_texts

ROOT = Path(__file__).resolve().parents[1]


def passages_from_kowiki(kowiki: Path, out_dir: Path, model: str, n_docs: int) -> Path:
    """Chunk the first ``n_docs`` shared kowiki articles into a passages file (teacher token budget)."""
    from kosparse.chunk import chunk_documents, load_backend_tokenizer, passage_budget

    rows = []
    for path in sorted(kowiki.glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                doc = json.loads(line)
                if len(doc.get("text") or "") >= 200:
                    rows.append(
                        {
                            "source": "kowiki",
                            "id": str(doc["id"]),
                            "title": doc.get("title") or "",
                            "url": doc.get("url") or "",
                            "text": doc["text"],
                        }
                    )
                if len(rows) >= n_docs:
                    break
        if len(rows) >= n_docs:
            break
    out_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), out_dir / "documents.parquet")
    budget = passage_budget(load_backend_tokenizer(model), 512, "passage: ")
    chunk_documents(
        out_dir / "documents.parquet",
        out_dir / "passages.parquet",
        out_dir / "chunk_report.json",
        model,
        budget,
        1,
        16,
        workers=1,
    )
    return out_dir / "passages.parquet"


def main() -> None:
    """Run the benchmark and print/write the numbers."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/teacher", help="teacher folder or hub id")
    ap.add_argument("--passages", type=Path, default=ROOT / "bench" / "out" / "kowiki" / "passages.parquet",
                    help="passages file; when missing or short, cut from --kowiki into this default path")
    ap.add_argument("--kowiki", type=Path, default=ROOT.parent / "shared" / "data" / "kowiki")
    ap.add_argument("-n", type=int, default=1000, help="passages to embed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prefix", default="passage: ")
    ap.add_argument("--backends", default="auto", help="comma-separated EmbedConfig.backend values to time")
    ap.add_argument("--onnx-dir", default=None)
    ap.add_argument("--baseline-batch-sizes", default="32",
                    help="comma-separated batch sizes for the baseline; the first is the named baseline "
                         "(32, sentence-transformers' default), the others are printed for reference")
    ap.add_argument("--batch-sizes", default=None,
                    help="comma-separated batch sizes for ours (default: EmbedConfig's)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "embed.json")
    args = ap.parse_args()

    passages = args.passages
    if not passages.exists() or pq.ParquetFile(passages).metadata.num_rows < args.n:
        # Cut into the default location (never over a user-given file).
        passages = passages_from_kowiki(
            args.kowiki, ROOT / "bench" / "out" / "kowiki", args.model, args.n // 3 + 50
        )
    table = pq.read_table(passages, columns=["text"])
    rng = np.random.default_rng(args.seed)
    rows = np.sort(rng.choice(table.num_rows, size=min(args.n, table.num_rows), replace=False))
    texts = [table["text"][int(i)].as_py() for i in rows]

    import torch
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(args.model, device="cpu")
    n_tokens = [
        len(ids)
        for ids in st.tokenizer(
            [args.prefix + t for t in texts], truncation=True, max_length=st.max_seq_length
        )["input_ids"]
    ]
    t0, c0 = time.perf_counter(), time.process_time()
    base_sizes = [int(b) for b in args.baseline_batch_sizes.split(",")]
    base = st.encode([args.prefix + t for t in texts], batch_size=base_sizes[0], convert_to_numpy=True)
    base_wall, base_cpu = time.perf_counter() - t0, time.process_time() - c0
    reference: list[dict[str, Any]] = []
    for size in base_sizes[1:]:
        t0 = time.perf_counter()
        st.encode([args.prefix + t for t in texts], batch_size=size, convert_to_numpy=True)
        reference.append({"what": f"SentenceTransformer.encode(prefix + text, batch_size={size}), fp32",
                          "texts_per_s": round(len(texts) / (time.perf_counter() - t0), 2)})
    del st

    base = base / np.linalg.norm(base, axis=1, keepdims=True)
    result: dict[str, Any] = {
        "texts": len(texts),
        "mean_tokens": round(float(np.mean(n_tokens)), 1),
        "model": args.model,
        "threads": torch.get_num_threads(),
        "baseline": {
            "what": f"SentenceTransformer.encode(prefix + text, batch_size={base_sizes[0]}), fp32",
            "texts_per_s": round(len(texts) / base_wall, 2),
            "wall_s": round(base_wall, 1),
            "cpu_s": round(base_cpu, 1),
        },
        "baseline_other_batch_sizes": reference,
        "ours": [],
    }
    print(f"{len(texts)} passages, mean {result['mean_tokens']} tokens, {result['threads']} threads")
    print(f"baseline  ST encode fp32 bs{base_sizes[0]} : {result['baseline']['texts_per_s']:7.2f} texts/s")
    for ref in reference:
        print(f"reference {ref['what']}: {ref['texts_per_s']:7.2f} texts/s "
              f"(x{ref['texts_per_s'] / result['baseline']['texts_per_s']:.2f} of the baseline)")
    sizes = [int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes else [EmbedConfig().batch_size]
    for backend, batch_size in ((b, n) for b in args.backends.split(",") for n in sizes):
        t0 = time.perf_counter()
        encoder = Encoder(args.model, EmbedConfig(backend=backend, device="cpu", onnx_dir=args.onnx_dir,
                                                  batch_size=batch_size))
        load_s = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        ours = embed_texts(encoder, texts, "passage", args.prefix)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        cos = (base * ours).sum(1)
        row = {
            "backend": f"{backend} -> {encoder.backend} bs{batch_size}",
            "texts_per_s": round(len(texts) / wall, 2),
            "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1),
            "load_s": round(load_s, 1),
            "speedup_wall": round(base_wall / wall, 2),
            "speedup_cpu_time": round(base_cpu / cpu, 2),
            "cos_mean": round(float(cos.mean()), 5),
            "cos_min": round(float(cos.min()), 5),
        }
        result["ours"].append(row)
        print(
            f"ours      {row['backend']:<22}: {row['texts_per_s']:7.2f} texts/s  "
            f"x{row['speedup_wall']:.2f} wall x{row['speedup_cpu_time']:.2f} CPU-time  "
            f"cos mean {row['cos_mean']:.5f} min {row['cos_min']:.5f}"
            f"  (load/export {load_s:.1f}s, not timed)"
        )
        del encoder
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
