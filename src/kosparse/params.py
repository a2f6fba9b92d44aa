"""Compose ``conf/`` into ``params.yaml`` exactly as ``dvc exp run`` does (``make params``).

Uses DVC's own ``compose_and_dump`` so the committed ``params.yaml`` is byte-for-byte what an
experiment run would write for the same overrides.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dvc.utils.hydra import compose_and_dump


def compose(output: Path, conf_dir: Path = Path("conf"), overrides: list[str] | None = None,
            config_name: str = "config") -> Path:
    """Compose Hydra config ``conf_dir/config_name.yaml`` (with overrides) into ``output``.

    Args:
        output: The YAML file to write.
        conf_dir: Hydra's config directory.
        overrides: Hydra override strings (``chunk.overlap_sentences=2``, ``experiment=smoke``).
        config_name: Name of the primary config file without ``.yaml``.

    Returns:
        ``output``.
    """
    compose_and_dump(output, str(conf_dir.resolve()), None, config_name, str(Path.cwd()), overrides or [])
    return output


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m kosparse.params [-o params.yaml] [override ...]``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-o", "--output", type=Path, default=Path("params.yaml"))
    parser.add_argument("--conf", type=Path, default=Path("conf"))
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    compose(args.output, args.conf, args.overrides)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
