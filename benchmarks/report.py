"""Writing the suite's results: `latest.json` (everything) and `latest.md` (the table)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.harness import Result

ENGINE_DIRS = ("schemas", "gateway", "sandbox", "tasks", "flows")
COLUMNS = ("benchmark", "contender", "rows", "rows/s", "CPU µs/request", "ratio", "target", "met?")


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "processor": platform.processor() or platform.machine(),
    }


def engine_version(repo: Path) -> str:
    """The commit measured (`BENCH_COMMIT` if set, else git's HEAD, `-dirty` with local changes)."""
    if os.environ.get("BENCH_COMMIT"):
        return os.environ["BENCH_COMMIT"]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", *ENGINE_DIRS],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def _num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _met(value: bool | None) -> str:
    return "–" if value is None else ("yes" if value else "**no**")


def _ratio(result: Result) -> str:
    if result.ratio is None:
        return "–"
    return f"{result.ratio:.2f}" + (f" ({result.ratio_to})" if result.ratio_to else "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(results: list[Result], meta: dict[str, Any]) -> str:
    """The markdown report: header, the table, then each row's notes."""
    lines = [
        f"# byokflow benchmarks ({meta['size']})",
        "",
        f"{meta['date']} · {meta['machine']['cpu_count']} CPUs · {meta['machine']['platform']} · "
        f"Python {meta['machine']['python']} · engine {meta.get('commit', 'unknown')} · "
        f"suite took {meta['total_s']:.0f} s",
        "",
        "Run with `python -m benchmarks.run` (`--quick` for the CI smoke size). "
        "Each benchmark starts its own sandbox gateway in a child process; contenders run one "
        "after another on this machine. CPU µs/request is the contender's own CPU (the sandbox's "
        "is never counted).",
        "",
        "1-minute load average at the start and end of each benchmark (2 CPUs means 2 is a full "
        "machine): "
        + ", ".join(f"{name} {' → '.join(map(str, v))}" for name, v in meta.get("load_average", {}).items()),
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join(" --- " for _ in COLUMNS) + "|",
    ]
    for r in results:
        cells = [
            r.benchmark,
            r.contender,
            f"{r.rows:,}",
            _num(r.rows_per_s),
            _num(r.cpu_us_per_request),
            _ratio(r),
            r.target or "–",
            _met(r.met),
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += ["", "## Notes", ""]
    for r in results:
        if r.notes:
            lines.append(f"- **{r.benchmark} / {r.contender}**: {r.notes}")
    if meta.get("merged_from"):
        lines += ["", "## Invocations merged into this report", ""]
        lines += [
            f"- {m['date']} ({m.get('commit', 'unknown')}): {', '.join(m['benchmarks'])}"
            for m in meta["merged_from"]
        ]
    if meta.get("errors"):
        lines += ["", "## Benchmarks that failed to run", ""]
        lines += [f"- **{name}**: {error}" for name, error in meta["errors"].items()]
    return "\n".join(lines) + "\n"


def write(results: list[Result], out_dir: Path, meta: dict[str, Any]) -> tuple[Path, Path]:
    """Write `latest.json` and `latest.md` in `out_dir`; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    document = {**meta, "results": [r.to_dict() for r in results]}
    json_path, md_path = out_dir / "latest.json", out_dir / "latest.md"
    json_path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    md_path.write_text(markdown(results, meta), encoding="utf-8")
    return json_path, md_path


def now() -> str:
    """The date and time of the run (UTC, ISO 8601)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def merge(paths: list[Path]) -> tuple[list[Result], dict[str, Any]]:
    """Combine `latest.json` files of several invocations: each benchmark from the last file that ran
    it without crashing.

    For suites too long to run in one go (the 1M-row memory run): run `--only` parts separately on
    the same engine commit, then `python -m benchmarks.report A.json B.json --out DIR`.
    """
    documents = [json.loads(path.read_text(encoding="utf-8")) for path in paths]
    chosen: dict[str, dict[str, Any]] = {}
    for document in documents:
        for name in document["benchmarks"]:
            # A later run replaces an earlier one, unless it crashed where the earlier one did not.
            crashed = name in document.get("errors", {})
            if not crashed or name not in chosen or name in chosen[name].get("errors", {}):
                chosen[name] = document
    names = list(dict.fromkeys(name for d in documents for name in d["benchmarks"]))
    results = [Result(**r) for name in names for r in chosen[name]["results"] if r["benchmark"] == name]
    used = [d for d in documents if d in chosen.values()]
    # A file that is itself a merge contributes its own invocations, not one made-up invocation.
    merged_from = [
        {**m, "benchmarks": [n for n in m["benchmarks"] if n in names and chosen[n] is d]}
        for d in used
        for m in d.get("merged_from") or [{"date": d["date"], "commit": d.get("commit"), "benchmarks": names}]
    ]
    merged_from = [m for m in merged_from if m["benchmarks"]]
    meta: dict[str, Any] = {
        "size": "+".join(sorted({d["size"] for d in used})),
        "date": max(d["date"] for d in used),
        "machine": used[0]["machine"],
        "commit": ", ".join(
            sorted({c for m in merged_from for c in str(m.get("commit") or "unknown").split(", ")})
        ),
        "benchmarks": names,
        "total_s": sum(d["total_s"] for d in used),
        "errors": {k: v for d in used for k, v in d.get("errors", {}).items() if chosen.get(k) is d},
        "load_average": {k: v for n in names for k, v in chosen[n].get("load_average", {}).items() if k == n},
        "merged_from": merged_from,
    }
    return results, meta


def main(argv: list[str] | None = None) -> None:
    """`python -m benchmarks.report A.json B.json [--out DIR]`: merge invocations into one report."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=merge.__doc__)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    results, meta = merge(args.files)
    json_path, md_path = write(results, args.out, meta)
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
