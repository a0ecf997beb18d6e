"""``refrad status`` and the end of ``refrad run`` in words: per stage done / dropped / failed /
pending with reasons, and for failures what the user can do. Failures are transient by
contract (the next run retries them); the hint says what to check first."""

from __future__ import annotations

from typing import Any

# What to check for a failure reason (an exception type or an engine reason), before a rerun.
HINTS = {
    "worker_died": "the item killed its worker every time (a crash in native code or the "
    "kernel's OOM killer): give the stage more memory (execution.max_item_retries retries)",
    "out_of_memory": "the worker ran out of memory: give the stage more memory or fewer "
    "workers per node",
    "MemoryError": "the worker ran out of memory: give the stage more memory",
    "OSError": "an I/O error on the storage (full, unmounted, unreachable): check it",
    "FileNotFoundError": "a file the item needs is gone: check the storage, or rerun from the "
    "stage that writes it",
    "PermissionError": "the worker may not read or write a file: check ownership and modes",
    "InputFileMissing": "an input seen by ingest is gone: rerun (ingest walks the inputs again)",
    "WeightsMissing": "TotalSegmentator's weights are missing on a node: install them there "
    "(totalseg_download_weights on a connected machine, then copy the Dataset* folders)",
    "NotInstalled": "TotalSegmentator is not installed on a node: pip install the segment extra",
    "APIConnectionError": "the LLM server was unreachable: start it (refrad llm serve)",
    "APITimeoutError": "the LLM server timed out: check its load",
    "InternalServerError": "the LLM server failed: check its log",
}
DEFAULT_HINT = "the error's type and place are in the stage's ledger under <work>/<stage>/"


def hint(reason: str) -> str:
    """What to check for one failure reason."""
    return HINTS.get(reason, DEFAULT_HINT)


def failures(statuses: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Failed items by stage and reason (stages without failures left out)."""
    return {s["stage"]: dict(s["failed"]) for s in statuses if s["failed"]}


def render(statuses: list[dict[str, Any]]) -> str:
    """The status table with reasons, and for failures a hint and the way out."""
    head = f"{'stage':16s} {'planned':>7s} {'done':>6s} {'dropped':>8s} {'failed':>7s} "
    lines = [head + f"{'pending':>8s}"]
    for s in statuses:
        lines.append(
            f"{s['stage']:16s} {s['planned']:7d} {s['done']:6d} {sum(s['dropped'].values()):8d} "
            f"{sum(s['failed'].values()):7d} {s['pending']:8d}"
        )
        lines += [f"{'':18s}dropped {reason}: {n}" for reason, n in s["dropped"].items()]
        for reason, n in s["failed"].items():
            lines.append(f"{'':18s}failed {reason}: {n} - {hint(reason)}")
    summary = failure_summary(statuses)
    if summary:
        lines += ["", summary]
    return "\n".join(lines)


def failure_summary(statuses: list[dict[str, Any]]) -> str:
    """One line for the end of a run: how many items failed, where, and that a rerun retries
    them; empty when none failed."""
    failed = failures(statuses)
    if not failed:
        return ""
    total = sum(sum(r.values()) for r in failed.values())
    where = ", ".join(f"{stage} {sum(r.values())}" for stage, r in failed.items())
    return (
        f"{total} item(s) failed ({where}); they are not lost: fix the cause "
        "(`refrad status` gives a hint per reason) and run again, which retries them"
    )
