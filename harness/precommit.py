"""`pgolf-precommit`: the pre-commit hook (.pre-commit-hooks.yaml) that runs `check` before a participant pushes.

pre-commit passes the staged file names, relative to the repository root, and has set unstaged changes aside, so
the work tree holds what will be committed. Each file under ``records/<track>/<name>/`` names its submission folder;
every folder still present is judged once by ``harness.check.check_path``, and files elsewhere are left to `ci`.
A passing folder prints one line, any other its whole text report. Exit code as for `ci`: 1 when a folder has error
findings, else 2 when one could not be checked, else 0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import UserError
from harness.submission.gitsource import submission_folder
from harness.verdict import EXIT_COULD_NOT_CHECK, EXIT_PASS, worst_exit_code


def _repo_relative(name: str) -> str:
    """NAME as a path relative to the working directory (pre-commit's repository root), in POSIX form."""
    path = Path(name)
    if path.is_absolute():
        try:
            path = path.resolve().relative_to(Path.cwd().resolve())
        except ValueError:
            return path.as_posix()
    return path.as_posix()


def staged_folders(files: list[str]) -> list[str]:
    """The submission folders (records/<track>/<name>) that FILES lie in and that exist, sorted, each once."""
    folders = {f for name in files if (f := submission_folder(_repo_relative(name))) is not None}
    return sorted(f for f in folders if Path(f).is_dir())


def check_folders(folders: list[str], policy: str = "readme") -> tuple[str, int]:
    """Judge each folder; the text to print and the worst exit code."""
    from harness.check.pipeline import CheckOptions, check_path
    from harness.report.render import render

    lines, codes = [], []
    for folder in folders:
        report = check_path(Path(folder), CheckOptions(policy=policy))
        codes.append(report.exit_code)
        lines.append(f"{folder}: {report.verdict} (exit {report.exit_code})")
        if report.exit_code != EXIT_PASS:
            lines += [render(report, "text"), ""]
    if not folders:
        lines.append("pgolf-precommit: no staged file lies in a records/<track>/<name>/ folder")
    return "\n".join(lines), worst_exit_code(codes)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: check the records folders of the files named on the command line."""
    parser = argparse.ArgumentParser(prog="pgolf-precommit", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="staged files, relative to the repository root")
    parser.add_argument("--policy", choices=["readme", "frontier"], default="readme", help="significance policy")
    args = parser.parse_args(argv)
    try:
        text, code = check_folders(staged_folders(args.files), args.policy)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_COULD_NOT_CHECK
    print(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
