"""``python -m kosparse.explain "머신러닝" [more texts] [--model models/student] [--top-k 20] [--query]``.

Prints a sparse model's top tokens with their weights for each text (document side by default).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, encode the texts and print their top tokens."""
    parser = argparse.ArgumentParser(prog="kosparse explain", description=__doc__.splitlines()[0])
    parser.add_argument("texts", nargs="+")
    parser.add_argument("--model", default="models/student", help="SparseEncoder folder or hub id")
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--query", action="store_true", help="encode as queries (inference-free query side)")
    args = parser.parse_args(argv)
    from sentence_transformers.sparse_encoder import SparseEncoder

    model = SparseEncoder(args.model, device="cpu")
    encode = model.encode_query if args.query else model.encode_document
    emb = encode(args.texts, convert_to_tensor=True).to_dense()
    decoded: list[Any] = list(model.decode(emb, top_k=args.top_k))
    for i, (text, row) in enumerate(zip(args.texts, decoded, strict=True)):
        print(f"{text}  ({int((emb[i] > 0).sum())} non-zero)")
        for token, weight in row:
            print(f"  {token}\t{weight:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
