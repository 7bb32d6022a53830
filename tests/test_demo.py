"""The offline demo is the same model and SAEs in every process (no hash-order dependence)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys


def build_in_subprocess(out, hash_seed: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    code = "import sys; from sae_specialists.demo import build_demo; build_demo(sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, str(out)], env=env, check=True,
                   capture_output=True)
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*")) if p.is_file()
    }


def test_demo_assets_do_not_depend_on_the_hash_seed(tmp_path):
    first = build_in_subprocess(tmp_path / "a", "1")
    second = build_in_subprocess(tmp_path / "b", "2")
    assert "model/model.safetensors" in first and "saes/res/layer3/sae_weights.safetensors" in first
    assert first == second
