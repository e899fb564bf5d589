"""Parameter Golf compliance harness and reference trainer.

\b
  python cli.py check submissions/my_run/             static verdict on a submission folder or script
  python cli.py check RUN/ --against PREV_RUN/        ... with the significance test against a previous record
  python cli.py rules                                  every rule: ID, severity, summary, ruling
  python cli.py reproduce RUN/ --seeds 42,7,2024       re-run under harness-owned budgets and compare
  python cli.py ci --base origin/main                  check the submission folders a pull request changed
  python cli.py audit --repo PG_CLONE/ -o audit.html   check every records folder of every pull-request head
  python cli.py probe RUN/                             run the evaluation with legality probes
  python cli.py data / train / eval                    the reference trainer

Exit codes: 0 pass, 1 error findings, 2 could not check (bad input, tool error).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from harness.challenge import EVAL_BUDGET_S, TRAIN_BUDGET_S
from harness.errors import UserError
from harness.extras import require_train_extra

FORMATS = ("text", "json", "sarif", "markdown")

format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
    help="Output format: human text, the JSON contract, SARIF 2.1.0, or a Markdown PR comment.")
output_option = click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Write the report to this file instead of standard output.")


def _require_output_folder(output: Path | None) -> None:
    if output is not None and not output.parent.is_dir():
        raise UserError(f"{output}: the folder {output.parent} does not exist")


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text)
    else:
        _require_output_folder(output)
        output.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")


@click.group(help=__doc__)
@click.version_option(package_name="pgolf-harness", message="%(prog)s %(version)s")
def main() -> None:
    pass


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@format_option
@output_option
@click.option("--against", metavar="REFERENCE", default=None,
              help="Reference for the significance test: a previous record folder, or comma-separated "
                   "per-seed val_bpb values (val_loss:val_bpb pairs give the nats conversion).")
@click.option("--policy", type=click.Choice(["readme", "frontier"]), default="readme", show_default=True,
              help="Significance policy: README (0.005 nats, p < 0.01) or leaderboard practice since "
                   "2026-04-28 (one-sided Welch, p < 0.25).")
@click.option("--allow", "allow_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Reviewer allow-list (TOML or JSON): entries with rule, optional file/line, and a reason.")
@click.option("--strict-size", is_flag=True,
              help="Judge the cap on the shipped bytes only, never on a logged wrapper size.")
@click.option("--probe", is_flag=True,
              help="Also run the runtime legality probes (runs the script at tiny scale on CPU; seconds to minutes).")
@click.option("--verbose", "-v", is_flag=True,
              help="Text output: also info findings and every fact table (sizes, claims, claims vs logs, judged by, "
                   "timings).")
def check(path: Path, fmt: str, output: Path | None, against: str | None, policy: str,
          allow_file: Path | None, strict_size: bool, probe: bool, verbose: bool) -> None:
    """Static verdict on a submission folder or a single script."""
    from harness.check.pipeline import CheckOptions, check_path
    from harness.report.render import render
    from harness.report.text import render_text

    if probe:
        require_train_extra("check --probe")
    report = check_path(path, CheckOptions(against=against, policy=policy, allow_file=allow_file,
                                           strict_size=strict_size, probe=probe))
    _emit(render_text(report, verbose=verbose) if fmt == "text" else render(report, fmt), output)
    sys.exit(report.exit_code)


@main.command(name="rules")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown", "docs"]), default="text",
              show_default=True, help="Listing format; `docs` is the full rule documentation (docs/rules.md).")
def rules_cmd(fmt: str) -> None:
    """List every rule: ID, severity, summary and the ruling it rests on."""
    from harness.report.coverage import render_rules

    click.echo(render_rules(fmt))


@main.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--seeds", default="42,7,2024", show_default=True, help="Comma-separated seeds to re-run.")
@click.option("--fresh-seeds", type=int, default=0, show_default=True,
              help="Add this many harness-chosen seeds to the ones given.")
@click.option("--nproc", type=int, default=1, show_default=True, help="Processes per run (torchrun).")
@click.option("--train-budget", type=float, default=TRAIN_BUDGET_S, show_default=True, help="Training cap, seconds.")
@click.option("--eval-budget", type=float, default=EVAL_BUDGET_S, show_default=True, help="Evaluation cap, seconds.")
@click.option("--setup-allowance", type=float, default=120.0, show_default=True,
              help="Untimed setup allowed on top of the two caps, seconds.")
@click.option("--memory-gb", type=float, default=None, help="Memory cap for each run, GiB.")
@click.option("--data", "data_path", type=click.Path(path_type=Path), default=None,
              help="Dataset folder with fineweb_{train,val}_*.bin (default: the local dataset from `data`).")
@click.option("--tokenizer", type=click.Path(path_type=Path), default=None, help="SentencePiece model path.")
@click.option("--results", type=click.Path(path_type=Path), default=None,
              help="Results folder (default: results/<submission name>).")
@click.option("--against", metavar="REFERENCE", default=None, help="Reference for the significance test.")
@click.option("--policy", type=click.Choice(["readme", "frontier"]), default="readme", show_default=True,
              help="Significance policy.")
@click.option("--env", "extra_env", multiple=True, metavar="KEY=VALUE",
              help="Extra environment for the run (repeatable), e.g. a tiny configuration.")
@click.option("--probe", is_flag=True, help="Also run the runtime legality probes.")
@click.option("--overwrite", is_flag=True, help="Replace an existing results folder instead of resuming.")
def reproduce(path: Path | None, seeds: str, fresh_seeds: int, nproc: int, train_budget: float,
              eval_budget: float, setup_allowance: float, memory_gb: float | None, data_path: Path | None,
              tokenizer: Path | None, results: Path | None, against: str | None, policy: str,
              extra_env: tuple[str, ...], probe: bool, overwrite: bool) -> None:
    """Re-run a submission (default: the shipped reference) under harness-owned budgets."""
    require_train_extra("reproduce")
    from harness.report.reproduce import write_reproduce_reports
    from harness.run.outcome import ReproduceOptions
    from harness.run.reproduce import reproduce as run_reproduce

    result = run_reproduce(ReproduceOptions(
        path=path, seeds=seeds, fresh_seeds=fresh_seeds, nproc=nproc, train_budget=train_budget,
        eval_budget=eval_budget, setup_allowance=setup_allowance, memory_gb=memory_gb, data_path=data_path,
        tokenizer=tokenizer, results=results, against=against, policy=policy, extra_env=extra_env,
        probe=probe, overwrite=overwrite), progress=click.echo)
    click.echo(write_reproduce_reports(result))
    sys.exit(result.exit_code)


@main.command()
@click.option("--base", required=True, help="Git ref the pull request is compared against.")
@click.option("--head", default="HEAD", show_default=True, help="Git ref of the pull request.")
@click.option("--repo", "repo_path", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="The challenge repository checkout.")
@click.option("--sarif", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write SARIF here.")
@click.option("--markdown", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the Markdown summary here (default: $GITHUB_STEP_SUMMARY when set).")
@click.option("--annotations/--no-annotations", default=None,
              help="Print GitHub workflow annotations (default: on under GitHub Actions).")
@click.option("--policy", type=click.Choice(["readme", "frontier"]), default="readme", show_default=True,
              help="Significance policy.")
@click.option("--allow", "allow_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Reviewer allow-list (TOML or JSON, as for `check --allow`); a file may be given relative to "
                   "its records folder or to the repository.")
def ci(base: str, head: str, repo_path: Path, sarif: Path | None, markdown: Path | None,
       annotations: bool | None, policy: str, allow_file: Path | None) -> None:
    """Check every submission folder added or changed since BASE; non-zero on error findings."""
    from harness.ci import CiOptions, run_ci

    for path in (sarif, markdown):
        _require_output_folder(path)  # before anything is judged, not after
    result = run_ci(CiOptions(base=base, head=head, repo=repo_path, sarif=sarif, markdown=markdown,
                              annotations=annotations, policy=policy, allow_file=allow_file))
    click.echo(result.text)
    sys.exit(result.exit_code)


@main.command()
@click.option("--repo", "repo_path", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="A local git copy of the challenge repository with its pull-request heads fetched.")
@click.option("--refs", default="refs/pull/*/head", show_default=True, help="Which refs to audit (a ref pattern).")
@click.option("--base", default=None, help="The ref pull requests are compared with (default: main, else master).")
@click.option("--jobs", "-j", type=int, default=os.cpu_count() or 1, show_default=True, help="Worker processes.")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Verdict cache, keyed by folder content and harness source [default: ~/.cache/pgolf-harness/audit].")
@click.option("--no-cache", is_flag=True, help="Check every folder again and keep nothing.")
@click.option("--limit", type=int, default=None, help="Check only the first N distinct folders.")
@click.option("--folder-timeout", type=float, default=300.0, show_default=True, help="Seconds allowed per folder.")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json", "html"]), default=None,
              help="Output format [default: from the -o suffix, else text].")
@output_option
@click.option("--policy", type=click.Choice(["readme", "frontier"]), default="readme", show_default=True,
              help="Significance policy.")
def audit(repo_path: Path, refs: str, base: str | None, jobs: int, cache_dir: Path | None, no_cache: bool,
          limit: int | None, folder_timeout: float, fmt: str | None, output: Path | None, policy: str) -> None:
    """Check every records folder the pull-request heads add or change: a sortable table of verdicts."""
    from harness.audit import DEFAULT_CACHE, AuditOptions, run_audit
    from harness.report.audit import RENDERERS, summary_lines

    if jobs < 1 or (limit is not None and limit < 0) or folder_timeout <= 0:
        raise UserError("--jobs and --folder-timeout must be positive and --limit not negative")
    if fmt is None:
        suffix = output.suffix.lower() if output else ""
        fmt = {".html": "html", ".htm": "html", ".md": "markdown", ".json": "json"}.get(suffix, "text")
    _require_output_folder(output)  # before the audit runs, not after

    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if tty:
            click.echo(f"\raudit: {done}/{total} folders checked", err=True, nl=done == total)
        elif done == total or done % 100 == 0:
            click.echo(f"audit: {done}/{total} folders checked", err=True)

    result = run_audit(AuditOptions(repo=repo_path, refs=refs, base=base, jobs=jobs, policy=policy,
                                    cache=None if no_cache else (cache_dir or DEFAULT_CACHE), limit=limit,
                                    folder_timeout_s=folder_timeout), progress=progress)
    _emit(RENDERERS[fmt](result), output)
    if output is not None:
        click.echo(summary_lines(result)[0], err=True)
    sys.exit(result.exit_code)


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@format_option
@output_option
@click.option("--data", "data_path", type=click.Path(path_type=Path), default=None,
              help="Dataset folder (default: the local dataset from `data`).")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds allowed for the probe run.")
@click.option("--cpu-compat/--no-cpu-compat", default=True, show_default=True,
              help="Run CUDA-assuming scripts on the CPU (CUDA calls kept on the CPU, flash-attn stand-ins on SDPA).")
def probe(path: Path, fmt: str, output: Path | None, data_path: Path | None, timeout: float, cpu_compat: bool) -> None:
    """Run the submission's evaluation at tiny scale with causality and score-before-update probes."""
    require_train_extra("probe")
    from harness.report.render import render
    from harness.run.probe import ProbeOptions, probe_path

    report = probe_path(path, ProbeOptions(data_path=data_path, timeout=timeout, cpu_compat=cpu_compat))
    _emit(render(report, fmt), output)
    sys.exit(report.exit_code)


@main.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("data"), show_default=True,
              help="Where to write tokenizers/ and datasets/.")
@click.option("--vocab-size", type=int, default=1024, show_default=True, help="SentencePiece BPE vocabulary.")
@click.option("--val-docs", type=int, default=None, help="Documents held out for validation (default: 5%).")
@click.option("--fineweb", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Use real FineWeb shards from this folder instead of building the local dataset.")
def data(out: Path, vocab_size: int, val_docs: int | None, fineweb: Path | None) -> None:
    """Build the local dataset in the challenge's shard format (or register real FineWeb shards)."""
    require_train_extra("data")
    from reference.data import DataOptions, build_dataset

    result = build_dataset(DataOptions(out=out, vocab_size=vocab_size, val_docs=val_docs, fineweb=fineweb))
    click.echo(result.text)
    sys.exit(result.exit_code)


@main.command()
@click.option("--preset", default="cpu-smoke", show_default=True,
              help="Configuration preset: cpu-smoke, naive-baseline, full (8xH100).")
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("submissions"),
              show_default=True, help="Submission folder to write (train_gpt.py, submission.json, log, README.md, "
              "artifact); `submissions` itself gets a child named the challenge's way, YYYY-MM-DD_description.")
@click.option("--data", "data_path", type=click.Path(path_type=Path), default=None, help="Dataset folder.")
@click.option("--nproc", type=int, default=1, show_default=True, help="Processes (torchrun).")
@click.option("--ttt/--no-ttt", default=True, show_default=True, help="Also run the legal score-first TTT eval.")
def train(preset: str, seed: int, out: Path, data_path: Path | None, nproc: int, ttt: bool) -> None:
    """Train the reference model and write a complete submission folder."""
    require_train_extra("train")
    from reference.runner import TrainOptions, train_submission

    result = train_submission(TrainOptions(preset=preset, seed=seed, out=out, data_path=data_path,
                                           nproc=nproc, ttt=ttt), progress=click.echo)
    click.echo(result.text)
    sys.exit(result.exit_code)


@main.command(name="eval")
@click.argument("artifact", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--ttt", is_flag=True, help="Use the legal score-first TTT evaluator.")
@click.option("--data", "data_path", type=click.Path(path_type=Path), default=None, help="Dataset folder.")
@click.option("--stride", type=int, default=None, help="Sliding-window stride (default: the artifact's).")
def eval_cmd(artifact: Path, ttt: bool, data_path: Path | None, stride: int | None) -> None:
    """Re-evaluate an artifact of the reference family (sliding window, optionally with legal TTT)."""
    require_train_extra("eval")
    from reference.runner import EvalOptions, evaluate_artifact

    result = evaluate_artifact(EvalOptions(artifact=artifact, ttt=ttt, data_path=data_path, stride=stride))
    click.echo(result.text)
    sys.exit(result.exit_code)


def run() -> None:
    """Entry point: bad input and unexpected failures end in one line and exit 2, never a traceback."""
    try:
        main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(2)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.format_message())  # bare `python cli.py`: the help, not an error
        sys.exit(0)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()} (see --help)", err=True)
        sys.exit(2)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        sys.exit(2)
    except Exception as exc:  # noqa: BLE001 - the contract is one line, never a traceback
        if type(exc).__name__ == "InputError":  # reference/'s bad-input error (it cannot import harness)
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        if os.environ.get("PGOLF_DEBUG"):
            raise
        click.echo(f"error: internal failure ({type(exc).__name__}: {exc}); set PGOLF_DEBUG=1 for details",
                   err=True)
        sys.exit(2)


if __name__ == "__main__":
    run()
