"""Helpers of tests/test_integrity.py: one small finished run (2 categories x 3 texts, one layer,
local model and SAEs that no rule builds), copied per test, and real `snakemake` calls on it."""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"
# texts of the small run: two categories, three texts each; one carries control characters
TEXTS = {
    "python": [
        "def add(a, b):\n    return a + b\n",
        "import os\nfor name in os.listdir('.'):\n    print(name)\n",
        "class Point:\n    def __init__(self, x):\n        self.x = x\x00\x07\n",
    ],
    "social": [
        "omg this is the best day ever 😍 #blessed @everyone",
        "lol cant believe it happened again 🙃 #mondays",
        "new post is up!! go check it out 🔥🔥 @friends",
    ],
}
MEMORY_LIMIT = 4 << 30  # address space of a snakemake call that must not explode


def small_config() -> dict:
    """The small run's config (paths relative to the run directory, which is copied per test)."""
    config = {
        "model": {"path": "assets/model"},
        "device": "cpu",
        "saes": {"res": {"path": "assets/saes/res/layer{layer}"}},
        "layers": [1],
        "texts": "texts",
        "results_dir": "results",
        "extraction": {"batch_size": 4},
        "dashboards": {"top_k_features": 2, "examples": 3, "quantiles": 2},
        "methodology": {
            "enabled": True,
            "model_variants": False,
            "thresholds": [1.0, 5.0],
            "bootstrap_resamples": 20,
        },
    }
    # stages added later switch on with an `enabled` flag (validation, causal, comparison,
    # surface, circuits, ...): keep this run to the four above
    schema = yaml.safe_load(SCHEMA.read_text())
    for section, spec in schema["properties"].items():
        if section not in config and "enabled" in spec.get("properties", {}):
            config[section] = {"enabled": False}
    return config


def build_small_run(root: Path, demo_assets: Path) -> Path:
    """Assets (copied, so they are user inputs no rule builds), texts, config; then the run."""
    root.mkdir(parents=True)
    shutil.copytree(demo_assets, root / "assets")
    write_texts(root / "texts", TEXTS)
    write_config(root, small_config())
    proc = snakemake(root, "--cores", "2", timeout=1500)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root


def write_texts(directory: Path, texts: dict[str, list[str]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for category, items in texts.items():
        (directory / f"{category}.yaml").write_text(
            yaml.safe_dump(items, allow_unicode=True), encoding="utf-8"
        )


def write_config(workdir: Path, config: dict) -> Path:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return path


def read_config(workdir: Path) -> dict:
    return yaml.safe_load((workdir / "config.yaml").read_text())


def copy_run(src: Path, dst: Path) -> Path:
    """A copy of a finished run (results, .snakemake metadata, assets; timestamps kept)."""
    shutil.copytree(src, dst, symlinks=True)
    return dst


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def snakemake(
    workdir: Path,
    *args: str,
    configfile: str | None = "config.yaml",
    timeout: float = 600,
    limit_memory: bool = False,
) -> subprocess.CompletedProcess:
    """The project's real Snakefile on `workdir` (targets and options in `args`)."""
    cmd = [SNAKEMAKE, *args, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]
    if configfile is not None:
        cmd += ["--configfile", str(workdir / configfile)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        preexec_fn=_limit_memory if limit_memory else None,
    )


def output(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout + proc.stderr


def scheduled(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """Job counts per rule from a dry run's 'Job stats' table ({} when nothing is to be done)."""
    counts: dict[str, int] = {}
    text = output(proc)
    if "Nothing to be done" in text:
        return counts
    in_table = False
    for line in text.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
        elif in_table and len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
            counts[parts[0]] = int(parts[1])
        elif in_table and parts[:1] == ["total"]:
            break
    return counts


# a user error at startup: the project's own report ("sae-specialists: cannot start (...)" then
# the message), or Snakemake's ("XError in file ...:", the message, then traceback frames)
STARTUP_ERROR = re.compile(r"^(?:sae-specialists: cannot start.*|\w*Error\b.*:)$")


def startup_error(proc: subprocess.CompletedProcess) -> str:
    """The message of the user error a failed `snakemake` call printed (every line of it),
    asserting it failed and printed no Python traceback."""
    text = output(proc)
    assert proc.returncode != 0, text
    assert "Traceback (most recent call last)" not in text, text
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if STARTUP_ERROR.match(line):
            message = []
            for follow in lines[i + 1 :]:
                if re.match(r'^\s+File "', follow):
                    break
                message.append(follow)
            return "\n".join(message).strip()
    raise AssertionError(f"no startup error in:\n{text}")


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.links.append(value)


def local_links(page: Path) -> list[str]:
    """Relative link targets (href/src) of an HTML page, anchors and query strings removed."""
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    out = []
    for link in parser.links:
        if re.match(r"^[a-z][a-z0-9+.-]*:", link) or link.startswith(("#", "//")):
            continue
        target = link.split("#", 1)[0].split("?", 1)[0]
        if target:
            out.append(target)
    return out


def missing_links(results: Path) -> list[str]:
    """Relative links (href/src) of every HTML page under `results` whose target does not
    exist."""
    from urllib.parse import unquote

    missing = []
    for page in sorted(results.rglob("*.html")):
        for link in local_links(page):
            if not (page.parent / unquote(link)).exists():
                missing.append(f"{page.relative_to(results)} -> {link}")
    return missing


def corrupt_data_pages(path: Path) -> None:
    """Flip bytes in the middle of a Parquet file: header magic and footer stay intact, so the
    file opens and its schema reads, but its data pages do not decode."""
    data = bytearray(path.read_bytes())
    start, stop = 64, max(65, len(data) // 2)
    for i in range(start, stop):
        data[i] ^= 0x5A
    stat = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def replace_with_old_file(path: Path, content: bytes) -> None:
    """Give `path` new content with a timestamp older than every output (like `cp -a` of an
    old file, or a restored backup)."""
    path.write_bytes(content)
    os.utime(path, (946_684_800, 946_684_800))  # 2000-01-01


def run_in_tiny_filesystem(directory: Path, size_kib: int, argv: list[str], prepare: str = ""):
    """Run `argv` with a tmpfs of `size_kib` mounted on `directory` (in a private mount
    namespace: nothing outside the child sees it, and it is gone when the child ends), so that
    writes there fail with a real ENOSPC. What `directory` held is hidden meanwhile, untouched.
    `prepare`: shell commands run after the mount (e.g. to fill it)."""
    directory.mkdir(parents=True, exist_ok=True)
    mount = f'mount -t tmpfs -o size={size_kib}k tmpfs "{directory}"'
    script = f'{mount} && {prepare or "true"} && exec "$@"'
    unshare = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(
        [*unshare, "sh", "-c", script, "sh", *argv],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def run_with_full_results(run: Path, argv: list[str], remove: list[str]):
    """Run `argv` in `run` with `results/` on a file system that is full: a tmpfs holding a copy
    of the results without the files in `remove`, the rest of its space taken by a filler. The
    real results directory is hidden meanwhile and untouched."""
    source = run / "results.copy"
    shutil.copytree(run / "results", source, symlinks=True)
    used = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    size_kib = used // 1024 + 4 * sum(1 for _ in source.rglob("*")) + 1024
    removals = " ".join(f'"{run / "results" / r}"' for r in remove)
    prepare = (
        f'cp -a "{source}/." "{run / "results"}" && rm -rf {removals} && '
        f'(dd if=/dev/zero of="{run / "results/.filler"}" bs=4096 2>/dev/null || true)'
    )
    try:
        return run_in_tiny_filesystem(run / "results", size_kib, argv, prepare)
    finally:
        shutil.rmtree(source)


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    return [
        SNAKEMAKE,
        *args,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
    ]
