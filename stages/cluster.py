"""Stage `cluster`: document_embeddings.npy -> cluster_ids.npy, centroids.npy, cluster_distances.npy."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from kosparse.cluster import ClusterConfig, cluster_report, kmeans
from kosparse.config import load_section

EMB = Path("data/neural_sparse_training/embeddings")


def main() -> int:
    """Run cluster with the `cluster` section of params.yaml."""
    cfg = load_section(ClusterConfig, "cluster")
    embeddings = np.load(EMB / "document_embeddings.npy", mmap_mode="r")
    cluster_ids, centroids, distances = kmeans(embeddings, cfg)
    np.save(EMB / "cluster_ids.npy", cluster_ids)
    np.save(EMB / "centroids.npy", centroids)
    np.save(EMB / "cluster_distances.npy", distances)
    report = cluster_report(cluster_ids, distances, len(centroids))
    text = json.dumps(report, indent=2, sort_keys=True) + "\n"
    (EMB / "cluster_report.json").write_text(text, encoding="utf-8")
    print(f"cluster: {report['n_points']:,} passages -> {report['n_clusters']} clusters "
          f"(sizes {report['size_min']}..{report['size_max']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
