"""Regenerate gen/python and deploy/envoy/switchboard.pb from protos/ (--check: fail if stale).

One command for every change to the contract:

    python scripts/gen_protos.py          # rewrite gen/python/switchboard/v1 and the
                                          # descriptor set of deploy/envoy
    python scripts/gen_protos.py --check  # exit 1 and show the diff when stale
"""

from __future__ import annotations

import argparse
import difflib
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
PACKAGE = Path("switchboard") / "v1"
OUT = ROOT / "gen" / "python"
# Envoy's grpc_json_transcoder reads the API from a FileDescriptorSet with every import.
DESCRIPTOR_SET = ROOT / "deploy" / "envoy" / "switchboard.pb"
INIT = '"""Generated protobuf messages and gRPC stubs of the switchboard.v1 API."""\n'


def _sources() -> list[str]:
    return sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / PACKAGE).glob("*.proto"))


def generate(out: Path) -> None:
    """Run protoc (grpcio-tools) for every switchboard.v1 file into ``out``."""
    sources = _sources()
    (out / PACKAGE).mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            *sources,
        ],
        check=True,
        cwd=PROTOS,
    )
    (out / PACKAGE / "__init__.py").write_text(INIT)
    (out / PACKAGE / "py.typed").write_text("")


def describe(out: Path) -> None:
    """Write the FileDescriptorSet of every switchboard.v1 file and its imports to ``out``.

    google/rpc/error_details.proto (from googleapis-common-protos) rides along: Envoy must
    know the error details packed in a google.rpc.Status to turn it into JSON.
    """
    from google.rpc import error_details_pb2  # noqa: PLC0415

    googleapis = Path(error_details_pb2.__file__).resolve().parents[2]
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"-I{googleapis}",
            "--include_imports",
            f"--descriptor_set_out={out}",
            *_sources(),
            "google/rpc/error_details.proto",
        ],
        check=True,
        cwd=PROTOS,
    )


def _generated_files(root: Path) -> set[str]:
    return {p.name for p in (root / PACKAGE).iterdir() if p.is_file()}


def check() -> int:
    """Compare a fresh generation with the committed one; print what differs."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        names = _generated_files(fresh) | _generated_files(OUT)
        stale = []
        for name in sorted(names):
            new, old = fresh / PACKAGE / name, OUT / PACKAGE / name
            if new.exists() and old.exists() and filecmp.cmp(new, old, shallow=False):
                continue
            stale.append(name)
            sys.stdout.writelines(
                difflib.unified_diff(
                    old.read_text().splitlines(keepends=True) if old.exists() else [],
                    new.read_text().splitlines(keepends=True) if new.exists() else [],
                    f"committed/{name}",
                    f"fresh/{name}",
                    n=1,
                )
            )
        describe(fresh / DESCRIPTOR_SET.name)
        if not DESCRIPTOR_SET.exists() or not filecmp.cmp(
            fresh / DESCRIPTOR_SET.name, DESCRIPTOR_SET, shallow=False
        ):
            stale.append(str(DESCRIPTOR_SET.relative_to(ROOT)))
    if stale:
        print(f"\ngenerated code is stale ({', '.join(stale)}): run `make gen` and commit.")
        return 1
    print("gen/python and the Envoy descriptor set are up to date")
    return 0


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when gen/python is stale")
    args = parser.parse_args()
    if args.check:
        return check()
    target = OUT / PACKAGE
    if target.exists():
        shutil.rmtree(target)
    generate(OUT)
    describe(DESCRIPTOR_SET)
    print(f"generated {target.relative_to(ROOT)} and {DESCRIPTOR_SET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
