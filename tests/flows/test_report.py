"""An evaluation end to end against the sandbox: scores, resume, and the report in headless Chromium.

The browser test needs Debian's `chromium` package (`apt-get install -y chromium`); without it the
test fails (it is never skipped): the report is only known to work once a browser has drawn it.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.evaluation import evaluate, summary_markdown
from flows.pipeline import load_pipeline_spec, pipeline
from sandbox import SandboxServer
from schemas.spec import CredentialsSpec, GatewaySpec, KeySource, PipelineSpec
from tasks.evaluation.report import ReportError, write_report
from tasks.evaluation.score_run import load_scoring_summary, score_outputs
from tests.conftest import SANDBOX_GATEWAY_KEY
from tests.flows.support import GATEWAY_ENV, read
from tests.tasks.evaluation.test_scorers import (
    NORMALIZED,
    build_output_dir,
    make_spec,
    result,
    standard_records,
)

EXAMPLE = Path(__file__).parents[2] / "examples" / "evaluation" / "pipeline.yaml"
PROVIDER_ENV = "BYOKFLOW_TEST_PROVIDER_KEY"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
]


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GATEWAY_ENV, SANDBOX_GATEWAY_KEY)
    monkeypatch.setenv(PROVIDER_ENV, "sandbox-test-provider-key")  # accepted for every provider


def example_spec(url: str, out: Path, input_path: Path | None = None) -> PipelineSpec:
    """The shipped evaluation example, pointed at the test's sandbox, keys and output directory."""
    spec = load_pipeline_spec(EXAMPLE)
    steps = [
        step.model_copy(update={"credentials": CredentialsSpec(env=PROVIDER_ENV)}) for step in spec.steps
    ]
    update = {
        "gateway": GatewaySpec(base_url=url, api_key=KeySource(env=GATEWAY_ENV)),
        "steps": steps,
        "output": spec.output.model_copy(update={"path": str(out)}),
    }
    if input_path is not None:
        update["input"] = spec.input.model_copy(update={"path": str(input_path)})
    return spec.model_copy(update=update)


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "the report test renders the page in Debian's headless Chromium, which is not installed: "
            "apt-get install -y chromium"
        )
    return path


def run_chromium(page: Path, profile: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    command = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments, page.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def png_pixels(path: Path) -> tuple[int, int, bytes]:
    """Width, height and the decompressed scanlines of a PNG file."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    chunks, position = [], 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        if kind == b"IDAT":
            chunks.append(data[position + 8 : position + 8 + length])
        position += 12 + length
    return width, height, zlib.decompress(b"".join(chunks))


def png_rows(path: Path, limit: int) -> list[list[tuple[int, int, int]]]:
    """The RGB pixels of the first `limit` rows of an 8-bit RGB or RGBA PNG (filters undone)."""
    data = path.read_bytes()
    width, height, raw = png_pixels(path)
    depth, colour = data[24], data[25]
    assert depth == 8 and colour in (2, 6), (depth, colour)
    bpp = 3 if colour == 2 else 4
    stride = width * bpp
    rows: list[list[tuple[int, int, int]]] = []
    previous = bytearray(stride)
    for y in range(min(height, limit)):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for x in range(stride):
            left = line[x - bpp] if x >= bpp else 0
            up, corner = previous[x], previous[x - bpp] if x >= bpp else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append([(line[i], line[i + 1], line[i + 2]) for i in range(0, stride, bpp)])
        previous = line
    return rows


def bar_extent(rows: list[list[tuple[int, int, int]]], colour: tuple[int, int, int], slack: int = 8) -> int:
    """The widest horizontal extent (first to last pixel) of `colour` in any row.

    Extents, not runs: the chart's grid lines show through the translucent bars.
    """
    best = 0
    for row in rows:
        hits = [
            x
            for x, pixel in enumerate(row)
            if all(abs(a - b) <= slack for a, b in zip(pixel, colour, strict=True))
        ]
        if len(hits) > 20:
            best = max(best, hits[-1] - hits[0] + 1)
    return best


def on_white(hex_colour: str, opacity: float) -> tuple[int, int, int]:
    """A colour drawn with `opacity` over a white page."""
    rgb = [int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]
    r, g, b = (round(255 * (1 - opacity) + c * opacity) for c in rgb)
    return r, g, b


def assert_models_differ_with_meaningful_intervals(out: Path) -> None:
    """Each scorer ranks the two models apart; no interval is the uninformative [0, 1]."""
    scored = load_scoring_summary(out)
    assert scored is not None
    for scorer in ("exact_match", "judge"):
        rows = [r for r in scored.rows if r["scorer"] == scorer]
        means = {r["model"]: r["mean"] for r in rows}
        assert len(set(means.values())) == 2, means
        for r in rows:
            assert 0 <= r["ci_low"] <= r["mean"] <= r["ci_high"] <= 1
            assert r["ci_high"] - r["ci_low"] < 0.6 and (r["ci_low"] > 0 or r["ci_high"] < 1), r
    exact = next(c for c in scored.comparisons if c["scorer"] == "exact_match")
    assert exact["verdict"] in ("a better", "b better")  # a difference clear of zero


def assert_whiskers_inside_the_axis(dom: str) -> None:
    """No drawn 95 % interval runs from the axis's 0 to its 1."""
    grid = [float(x) for x in re.findall(r'<line class="grid" x1="([\d.]+)"', dom)]
    whiskers = re.findall(r'<line class="ci" x1="([\d.]+)" y1="([\d.]+)" x2="([\d.]+)" y2="([\d.]+)"', dom)
    spans = [(float(x1), float(x2)) for x1, y1, x2, y2 in whiskers if y1 == y2]
    assert len(spans) == 4 and grid
    assert all(not (x1 <= min(grid) + 0.5 and x2 >= max(grid) - 0.5) for x1, x2 in spans), spans


pytestmark = pytest.mark.usefixtures("prefect_harness")


async def test_the_example_evaluation_scores_resumes_and_renders_in_chromium(
    tmp_path: Path, clean_sandbox: SandboxServer
) -> None:
    out = tmp_path / "out"
    spec = example_spec(clean_sandbox.url, out)
    await pipeline(spec)  # the run ends by scoring its outputs and writing the report
    assert clean_sandbox.stats()["requests"] == 12 * 4
    assert (out / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert len(read(out, "scores")) == 12 * 2 * 2 and not read(out, "errors")
    scored = load_scoring_summary(out)
    assert scored is not None
    assert {(r["scorer"], r["model"]) for r in scored.rows} == {
        (scorer, model)
        for scorer in ("exact_match", "judge")
        for model in ("openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-20241022")
    }
    assert [c["scorer"] for c in scored.comparisons] == ["exact_match", "judge"]
    assert "## Paired comparisons" in summary_markdown(scored)
    assert_models_differ_with_meaningful_intervals(out)

    # A rerun sends nothing (no judge call is made again) and computes no score.
    clean_sandbox.reset()
    rerun = await pipeline(spec)
    assert clean_sandbox.stats()["requests"] == 0
    again = score_outputs(spec, out, rerun.run_id)
    assert (again.computed, again.reused) == (0, 48)

    page = write_report(out)
    html = page.read_text(encoding="utf-8")
    assert "https://" not in html and "http://" not in html
    assert " src=" not in html and " href=" not in html and "url(" not in html
    done = run_chromium(page, tmp_path / "profile", "--dump-dom")
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console  # no script error, no failed load
    dom = done.stdout
    assert 'data-report="ready"' in dom  # the inline script ran to its end
    assert dom.count('class="summary-row"') == 4
    score_chart = dom[dom.index('id="score-chart"') : dom.index('id="summary-table"')]
    assert score_chart.count("<svg") == 2 and score_chart.count('<rect class="bar"') >= 2
    assert score_chart.count('<line class="ci"') == 4 * 3  # a whisker and its two caps per model
    latency = dom[dom.index('id="latency-chart"') : dom.index('id="cost-chart"')]
    assert latency.count('<rect class="bar"') == 4  # p50 and p95 of two models
    worst = dom[dom.index('id="worst-rows"') :]
    assert worst.count('class="worst-row"') == 20 and "What is 42 * 17?" in worst
    assert_whiskers_inside_the_axis(score_chart)

    shot = tmp_path / "report.png"
    run_chromium(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2400")
    width, height, pixels = png_pixels(shot)
    assert (width, height) == (1280, 2400)
    assert len(set(pixels)) > 50  # text, bars and colours, not a blank page
    # The drawn mean bars (35 % opaque over white) of the two models have different lengths, in the
    # ratio of their means, and neither fills the whole 0-1 axis. The score chart is at the top.
    bar_re = r'<rect class="bar" x="[\d.]+" y="[\d.]+" width="([\d.]+)" height="\d+" fill="(#[0-9a-f]{6})"'
    widths = {colour: float(width) for width, colour in re.findall(bar_re, score_chart)[:2]}
    grid = [float(x) for x in re.findall(r'<line class="grid" x1="([\d.]+)"', score_chart)]
    rows = png_rows(shot, limit=700)
    drawn = {colour: bar_extent(rows, on_white(colour, 0.35)) for colour in widths}
    for colour, width in widths.items():
        assert abs(drawn[colour] - width) <= 6, (colour, drawn[colour], width)
        assert drawn[colour] < max(grid) - min(grid) - 10
    first, second = drawn.values()
    assert abs(first - second) > 40


async def test_step_and_judge_errors_count_as_errors_never_as_zeros(
    tmp_path: Path, clean_sandbox: SandboxServer
) -> None:
    questions = [
        ("What is 6 * 7?", "42"),
        ("What is 2 + 2? [[sandbox:wrong_output]]", "4"),  # the judge answers JSON its schema rejects
        ("What is 9 - 3? [[sandbox:status=400]]", "6"),  # the candidates get a 400
    ]
    table = pa.table(
        {"id": ["a", "b", "c"], "question": [q for q, _ in questions], "reference": [r for _, r in questions]}
    )
    pq.write_table(table, tmp_path / "prompts.parquet")
    spec = example_spec(clean_sandbox.url, tmp_path / "out", tmp_path / "prompts.parquet")
    await pipeline(spec)
    scored = load_scoring_summary(tmp_path / "out")
    assert scored is not None
    rows = {(r["scorer"], r["step"]): r for r in scored.rows}
    exact = rows[("exact_match", "answer_openai")]
    assert (exact["rows"], exact["scored"], json.loads(exact["error_types"])) == (3, 2, {"bad_request": 1})
    judge = rows[("judge", "answer_openai")]
    assert (judge["scored"], judge["errors"]) == (1, 2)
    assert json.loads(judge["error_types"]) == {"bad_request": 1, "judge_invalid_output": 1}
    assert judge["error_rate"] == pytest.approx(2 / 3)
    page = write_report(tmp_path / "out").read_text(encoding="utf-8")
    assert "judge_invalid_output 1" in page


async def test_adding_a_scorer_to_a_finished_run_sends_nothing_and_scores_only_it(
    tmp_path: Path, clean_sandbox: SandboxServer
) -> None:
    full = example_spec(clean_sandbox.url, tmp_path / "out")
    exact_only = full.model_copy(update={"scores": [s for s in full.scores if s.name == "exact_match"]})
    run = await pipeline(exact_only)  # the run ends by scoring its outputs
    assert {r["run_id"] for r in read(tmp_path / "out", "scores")} == {run.run_id}
    assert len(read(tmp_path / "out", "scores")) == 24
    clean_sandbox.reset()
    rerun = await pipeline(full)
    assert clean_sandbox.stats()["requests"] == 0
    # Only the judge's scores were computed by the rerun; the exact-match ones were kept.
    by_scorer: dict[str, set[str]] = {}
    for record in read(tmp_path / "out", "scores"):
        by_scorer.setdefault(record["scorer"], set()).add(record["run_id"])
    assert by_scorer == {"exact_match": {run.run_id}, "judge": {rerun.run_id}}
    again = score_outputs(full, tmp_path / "out", rerun.run_id)
    assert (again.computed, again.reused) == (0, 48)


def test_the_report_escapes_every_text(tmp_path: Path) -> None:
    hostile = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
    out = build_output_dir(tmp_path, [result("r0", "answer", "openai/gpt-4o-mini", hostile)], [])
    score_outputs(make_spec(tmp_path, [NORMALIZED]), out, "run-1")
    html = write_report(out).read_text(encoding="utf-8")
    assert html.count("<script>") == 1 and "<img" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img" in html


def test_a_directory_without_scores_has_no_report(tmp_path: Path) -> None:
    out = build_output_dir(tmp_path, [result("r0", "answer", "openai/gpt-4o-mini", "x")], [])
    with pytest.raises(ReportError, match="no scores summary"):
        write_report(out)


async def test_evaluate_publishes_a_table_and_a_markdown_artifact(tmp_path: Path) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.runtime import flow_run

    out = build_output_dir(tmp_path, *standard_records())
    spec = make_spec(tmp_path, [NORMALIZED])

    @flow
    async def evaluation_flow() -> str:
        summary = await evaluate(spec, out, "run-1")
        assert summary is not None and summary.computed == 6
        return str(flow_run.get_id())

    run_id = await evaluation_flow()
    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    by_type = {a.type: a for a in artifacts}
    assert set(by_type) == {"table", "markdown"}
    assert "exact" in str(by_type["table"].data) and "wilson" in str(by_type["table"].data)
    assert "openai/gpt-4o-mini (answer) − anthropic" in str(by_type["markdown"].data)
    assert await evaluate(spec.model_copy(update={"scores": []}), out, "run-2") is None


def test_report_command_names_a_directory_without_scores(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    out = build_output_dir(tmp_path, [result("r0", "answer", "openai/gpt-4o-mini", "x")], [])
    failed = CliRunner().invoke(app, ["report", str(out)])
    assert failed.exit_code == 2 and "no scores summary" in " ".join(failed.output.split())
    score_outputs(make_spec(tmp_path, [NORMALIZED]), out, "run-1")
    written = CliRunner().invoke(app, ["report", str(out), "--to", str(tmp_path / "r.html")])
    assert written.exit_code == 0, written.output
    assert (tmp_path / "r.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
