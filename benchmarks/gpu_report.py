"""Markdown for the GPU suite: tables with the reference figures beside ours, and replaceable doc sections."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

METHOD_ORDER = ("full", "ips", "dbps", "dbps+")
TASK_ORDER = ("majority", "max", "top", "multi")

# The reference implementations measured on one NVIDIA H100 80GB: fp32, 1500² Megapixel MNIST, B = 16, M = I = 100,
# mean of an epoch's steps (CUDA events, data loading excluded), peak allocated memory.
REFERENCE_SIZE = 1500
REFERENCE_STEPS: dict[str, tuple[tuple[str, float, float], ...]] = {
    "ips": (("IPS code, CA, 4 tasks", 79.5, 1.89),),
    # the DBPS code runs its DBformer+ setting ('Half' sampling, drop 0.3) = our dbps+; majority task only
    "dbps+": (("DBPS code, CA, 1 task", 81.6, 1.89), ("DBPS code, ABX, 1 task", 89.8, 3.40)),
}
# Test accuracy (%) published for the IPS code, default config, 150 epochs.
PUBLISHED_ACCURACY = {"majority": 99.1, "max": 93.7, "top": 92.7, "multi": 81.9}
REFERENCE_LEGEND = (
    "Reference figures (one H100 80GB, fp32, 1500², B = 16, M = I = 100): IPS code 79.5 ms / 1.89 GB per step; "
    "DBPS code in its DBformer+ setting (= dbps+), majority task only: 81.6 ms / 1.89 GB (CA), "
    "89.8 ms / 3.40 GB (ABX). Published test accuracy of the IPS code after 150 epochs: majority 99.1 %, "
    "max 93.7 %, top 92.7 %, multi 81.9 %."
)


def number(value: object, digits: int = 1, scale: float = 1.0) -> str:
    """`value` × `scale` with `digits` decimals; '–' for a missing or non-numeric value."""
    try:
        x = float(value) * scale  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(x) else f"{x:,.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; None becomes '–' and '|' inside a cell is escaped."""

    def cell(value: object) -> str:
        return "–" if value is None or value == "" else str(value).replace("|", "\\|").replace("\n", " ")

    if any(len(row) != len(headers) for row in rows):
        raise ValueError(f"every row needs {len(headers)} cells")
    lines = ["| " + " | ".join(map(cell, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)


def gpu_tag(name: str) -> str:
    """A short file-name tag of a device: 'NVIDIA H100 80GB HBM3' → 'h100', 'NVIDIA GeForce RTX 4090' → 'rtx4090'."""
    words = [w for w in re.findall(r"[a-z0-9]+", name.lower()) if w not in {"nvidia", "geforce", "tesla", "quadro"}]
    if not words:
        return "unknown"
    if words[0].isalpha() and len(words) > 1:
        return words[0] + words[1]
    return words[0]


def _sort_key(row: Mapping[str, str]) -> tuple[int, int]:
    method = row.get("method", "")
    order = METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)
    return int(float(row.get("size") or 0)), order


def step_reference(method: str, size: int) -> str:
    """The references' ms/step and GB beside a bench row, where one was measured."""
    if size != REFERENCE_SIZE:
        return ""
    return "; ".join(f"{ms} ms / {gb:.2f} GB ({label})" for label, ms, gb in REFERENCE_STEPS.get(method, ()))


def bench_table(rows: Sequence[Mapping[str, str]]) -> str:
    """One line per image size and method of a `dbps bench` CSV; OOM and timeouts are rows too."""
    headers = ["image", "N", "method", "ms/step", "images/s", "peak GB", "selection ms", "selection TFLOP/s",
               "% of bf16 peak", "reference: ms/step / GB"]
    body = []
    for row in sorted(rows, key=_sort_key):
        size, status = int(float(row["size"])), row.get("status", "")
        ok = status == "ok"
        body.append([
            f"{size}²", row.get("num_patches", ""), row.get("method", ""),
            number(row.get("ms_per_step")) if ok else status.upper() if status == "oom" else status,
            number(row.get("images_per_s")) if ok else "", number(row.get("peak_memory_mb"), 2, 1 / 1024) if ok else "",
            number(row.get("selection_ms")) if ok else "", number(row.get("selection_tflops")) if ok else "",
            number(row.get("fraction_of_bf16_peak"), 1, 100) if ok else "", step_reference(row.get("method", ""), size),
        ])
    return markdown_table(headers, body)


def _with_reference(ours: str, reference: float | None) -> str:
    return ours if reference is None else f"{ours} ({reference})"


def training_table(rows: Sequence[Mapping[str, str]], *, with_reference: bool = True) -> str:
    """One line per trained preset; in brackets the reference's step figures and the published accuracies.

    `with_reference` False leaves the brackets out (runs at another image size than the references').
    """
    headers = ["preset", "method", "epochs", "best epoch", "ms/step (ref.)", "images/s", "peak GB (ref.)",
               *(f"{task} % (published)" for task in TASK_ORDER), "train min", "status"]
    body = []
    for row in rows:
        method = row.get("method", "")
        ref = REFERENCE_STEPS.get(method, ((None, None, None),))[0] if with_reference else (None, None, None)
        published = PUBLISHED_ACCURACY if with_reference else dict.fromkeys(TASK_ORDER)
        body.append([
            row.get("preset", ""), method, f"{row.get('epochs_done', '–')}/{row.get('epochs', '–')}",
            row.get("best_epoch", ""), _with_reference(number(row.get("ms_per_step")), ref[1]),
            number(row.get("images_per_s")), _with_reference(number(row.get("peak_memory_mb"), 2, 1 / 1024), ref[2]),
            *(_with_reference(number(row.get(task)), published[task]) for task in TASK_ORDER),
            number(row.get("train_seconds"), 1, 1 / 60), row.get("status", ""),
        ])
    return markdown_table(headers, body)


def stage_table(stages: Sequence[Mapping[str, object]]) -> str:
    """Budget, elapsed time and outcome of each stage, with the totals."""
    body = [[s["name"], number(s.get("budget_s"), 0), number(s.get("seconds")), s.get("status", ""), s.get("note", "")]
            for s in stages]
    budget = sum(float(s.get("budget_s") or 0) for s in stages)
    spent = sum(float(s.get("seconds") or 0) for s in stages)
    body.append(["**total**", number(budget, 0), number(spent), f"{spent / 60:.1f} of {budget / 60:.1f} min", ""])
    return markdown_table(["stage", "budget s", "elapsed s", "status", "note"], body)


def environment_line(env: Mapping[str, object]) -> str:
    """One sentence naming the machine and software a run measured."""
    gpu = env.get("gpu") or "no GPU"
    memory = f", {number(env.get('gpu_memory_gb'), 0)} GB" if env.get("gpu_memory_gb") else ""
    driver = f", driver {env['driver']}" if env.get("driver") else ""
    return (f"{gpu}{memory}{driver}, CUDA {env.get('cuda') or '–'}, PyTorch {env.get('torch') or '–'}, "
            f"Python {env.get('python') or '–'}, {env.get('cpus') or '?'} CPU cores; "
            f"commit {env.get('commit') or '–'}, {env.get('date') or ''}")


def markers(name: str) -> tuple[str, str]:
    """The comment lines that enclose a generated section."""
    return (f"<!-- gpu-suite:{name}:begin (generated by benchmarks/gpu.sh; edits here are replaced) -->",
            f"<!-- gpu-suite:{name}:end -->")


def replace_section(text: str, name: str, body: str) -> str:
    """`text` with the section `name` replaced by `body`, or appended at the end when it has no markers yet."""
    begin, end = markers(name)
    block = f"{begin}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(begin.split(" (")[0]) + r".*?" + re.escape(end), flags=re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text, count=1)
    return text.rstrip("\n") + "\n\n" + block + "\n"
