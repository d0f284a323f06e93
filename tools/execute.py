"""Execute the book's notebooks once, into the cache the book build reads, and check each one's time budget.

    python tools/execute.py [--profile cpu] [--jobs 1] [--force] [NOTEBOOK ...]   # = the first half of `make book`
    python tools/execute.py --profile quick --no-cache        # = make test-notebooks: run all, keep nothing
    python tools/execute.py --report                          # print the last run's table again

Every notebook the book executes (those in ``_toc.yml`` that ``_config.yml``'s ``execute.exclude_patterns`` does
not exclude) runs in its own kernel with ``COURSE_PROFILE`` set; a notebook whose code cells did not change since
it last ran in the same profile, against the same library, is not run again. Its outputs go into the jupyter-cache
that ``jupyter-book build`` (``execute_notebooks: cache``) merges into the pages, so the book build itself executes
nothing that ran here. The cache is keyed by the profile and a hash of ``course_lib`` (code and checkpoints) and
of the pinned environment: changing either re-runs every notebook, because every page depends on both.

At the end a table gives each notebook's time against its budget (``BUDGET_S``, from ../shared/COURSE_PLAN.md);
a notebook that failed or ran over budget makes the command fail, so a slow page is caught where it is written.
The table is also written to ``_build/timings.json``.

The budgets are for the course's reference 2-core machine, and hosts differ (this project's own 2-core CI host
has run the same page 2-4x slower on some days than on others). So the check is a ratio measured in the same
run, not a wall-clock test: just before and just after each notebook, in the same process and with the same
threads, the worker times a reference workload (``reference_step_seconds``: one reverse step of 96 digits
through the shipped DDPM U-Net, the operation that dominates the pages). The host factor is that time over
``REFERENCE_STEP_S``, the reference machine's, and a notebook's *normalised* time, seconds / host factor, is
what must fit the budget. The table shows both; a host faster than the reference gets a factor below 1 and a
stricter check.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path, PurePosixPath

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = {"quick": 45.0, "cpu": 180.0, "gpu": None}  # per notebook, 2 CPU cores (gpu: no budget here)
CACHE = ROOT / "_build" / ".jupyter_cache"
STAMP = CACHE / "course-stamp.json"
TIMINGS = ROOT / "_build" / "timings.json"
TIMEOUT_S = 900  # one cell; the budget check is on the whole notebook
# One reverse step of 96 16x16 digits through ddpm_digits on the reference 2-core machine: the figure the DDPM
# digits page was written against ("about 0.08 s per step for 96 on 2 cores", chapter 2, page 4).
REFERENCE_STEP_S = 0.08


def book_notebooks() -> list[Path]:
    """The notebooks ``jupyter-book build`` executes, in table-of-contents order."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    excluded = config.get("execute", {}).get("exclude_patterns", [])
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    found: list[Path] = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                found.extend(p for p in [ROOT / f"{node['file']}.ipynb"] if p.exists())
            if "glob" in node:
                found.extend(sorted(ROOT.glob(node["glob"] + ".ipynb")))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(toc)
    # myst-nb matches the patterns with PurePosixPath.match, i.e. against the end of each absolute path
    return [p for p in dict.fromkeys(found)
            if not any(PurePosixPath(p.resolve().as_posix()).match(pat) for pat in excluded)]


def environment_key(profile: str) -> dict:
    """What every page's outputs depend on besides its own cells: the profile, the library, the pins."""
    digest = hashlib.sha256()
    files = sorted(p for p in (ROOT / "course_lib").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in files + [ROOT / "requirements" / "lock.txt"]:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return {"profile": profile, "inputs_sha256": digest.hexdigest()}


def _open_cache(key: dict, force: bool):
    from jupyter_cache import get_cache

    cache = get_cache(str(CACHE))
    stale = force or not STAMP.exists() or json.loads(STAMP.read_text()) != key
    if stale:
        cache.clear_cache()
        cache = get_cache(str(CACHE))
        CACHE.mkdir(parents=True, exist_ok=True)
        STAMP.write_text(json.dumps(key, indent=1))
    return cache


def reference_step_seconds(threads: int, repeats: int = 7) -> float:
    """Seconds for one reverse step (a no-grad forward pass) of 96 16x16 digits through the shipped ddpm_digits
    U-Net, with ``threads`` threads: the median of ``repeats`` timed passes after two warm-up passes."""
    import torch

    from course_lib.unet import UNet

    torch.set_num_threads(threads)
    model = UNet.from_pretrained("ddpm_digits")
    x, t = torch.randn(96, 1, 16, 16, generator=torch.Generator().manual_seed(0)), torch.full((96,), 500)
    times = []
    with torch.no_grad():
        for i in range(repeats + 2):
            start = time.perf_counter()
            model(x, t)
            if i >= 2:
                times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _run(path: str, profile: str, threads: int) -> dict:
    """Execute one notebook in a fresh kernel (in a worker process); return its outputs, time and host factor."""
    from jupyter_cache.executors.utils import single_nb_execution

    os.environ.update(COURSE_PROFILE=profile, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    nb = nbformat.read(path, as_version=4)
    before = reference_step_seconds(threads)
    start = time.perf_counter()
    result = single_nb_execution(nb, cwd=str(Path(path).parent), timeout=TIMEOUT_S, allow_errors=False)
    seconds = time.perf_counter() - start
    after = reference_step_seconds(threads)
    return {"nb": nbformat.writes(result.nb), "seconds": seconds, "error": result.exc_string,
            "host_factor": (before + after) / 2 / REFERENCE_STEP_S}


def execute(notebooks: list[Path], profile: str, jobs: int = 1, force: bool = False,
            use_cache: bool = True) -> list[dict]:
    """Run every notebook of ``notebooks`` not in the cache (all of them if not ``use_cache``); return one row
    per notebook (in order)."""
    from jupyter_cache.base import CacheBundleIn

    cache = _open_cache(environment_key(profile), force) if use_cache else None
    rows, todo = {}, []
    for path in notebooks:
        if cache is None:
            todo.append(path)
            continue
        try:
            record = cache.match_cache_notebook(nbformat.read(path, as_version=4))
            rows[path] = {"status": "cached", "seconds": record.data.get("execution_seconds"),
                          "host_factor": record.data.get("host_factor")}
        except KeyError:
            todo.append(path)
    threads = max(1, (os.cpu_count() or 2) // max(jobs, 1))
    print(f"executing {len(todo)} of {len(notebooks)} notebooks (profile {profile}, {jobs} at a time, "
          f"{threads} thread(s) each); {len(notebooks) - len(todo)} unchanged, taken from the cache", flush=True)
    with ProcessPoolExecutor(max_workers=max(jobs, 1)) as pool:
        futures = {path: pool.submit(_run, str(path), profile, threads) for path in todo}
        for path, future in futures.items():
            out = future.result()
            name = path.relative_to(ROOT)
            if out["error"]:
                rows[path] = {"status": "FAILED", "seconds": out["seconds"], "error": out["error"],
                              "host_factor": out["host_factor"]}
                print(f"FAILED {name} after {out['seconds']:.0f} s:\n{out['error']}", flush=True)
                continue
            if cache is not None:
                cache.cache_notebook_bundle(CacheBundleIn(nbformat.reads(out["nb"], as_version=4), str(path),
                                                          data={"execution_seconds": out["seconds"],
                                                                "host_factor": out["host_factor"]}),
                                            check_validity=False, overwrite=True)
            rows[path] = {"status": "ran", "seconds": out["seconds"], "host_factor": out["host_factor"]}
            print(f"ran {name} in {out['seconds']:.0f} s (host factor {out['host_factor']:.2f}: "
                  f"{out['seconds'] / out['host_factor']:.0f} s on the reference machine)", flush=True)
    budget = BUDGET_S.get(profile)
    table = []
    for path in notebooks:
        row = {"notebook": str(path.relative_to(ROOT)), "profile": profile, "budget_s": budget,
               "jobs": jobs, **rows[path]}
        factor = row.get("host_factor") or 1.0
        row["normalised_s"] = None if row["seconds"] is None else row["seconds"] / factor
        if row["status"] != "FAILED" and budget is not None and (row["normalised_s"] or 0) > budget:
            row["status"] += ", OVER BUDGET"
        table.append(row)
    return table


def format_table(table: list[dict]) -> str:
    width = max([len("notebook"), *(len(r["notebook"]) for r in table)])
    lines = [f"{'notebook':<{width}}  profile  seconds  host x  normalised  budget  status"]
    for r in table:
        seconds = "?" if r["seconds"] is None else f"{r['seconds']:.0f}"
        factor = "?" if r.get("host_factor") is None else f"{r['host_factor']:.2f}"
        normalised = "?" if r.get("normalised_s") is None else f"{r['normalised_s']:.0f}"
        budget = "-" if r["budget_s"] is None else f"{r['budget_s']:.0f}"
        lines.append(f"{r['notebook']:<{width}}  {r['profile']:<7}  {seconds:>7}  {factor:>6}  {normalised:>10}  "
                     f"{budget:>6}  {r['status']}")
    total = sum(r["seconds"] or 0 for r in table)
    lines.append(f"{'total (notebook-seconds)':<{width}}  {'':<7}  {total:>7.0f}")
    lines.append("host x: the reference step's time here / on the reference machine (REFERENCE_STEP_S); "
                 "normalised = seconds / host x, checked against the budget")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="default: every notebook the book executes")
    parser.add_argument("--profile", default=os.environ.get("COURSE_PROFILE", "cpu"), choices=sorted(BUDGET_S))
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("BOOK_JOBS", "1")),
                        help="notebooks run at once (each gets cores / jobs threads); times are measured so")
    parser.add_argument("--force", action="store_true", help="empty the cache and run everything")
    parser.add_argument("--no-cache", action="store_true", help="run everything, leave the cache alone")
    parser.add_argument("--report", action="store_true", help="print the table of the last run and exit")
    args = parser.parse_args(argv)
    if args.report:
        if not TIMINGS.exists():
            print(f"no timings yet ({TIMINGS} is written by `make book`)")
            return 0
        table = json.loads(TIMINGS.read_text())
        print(format_table(table))
        return 0
    notebooks = [Path(p).resolve() for p in args.notebooks] or book_notebooks()
    start = time.perf_counter()
    table = execute(notebooks, args.profile, args.jobs, args.force, use_cache=not args.no_cache)
    print("\n" + format_table(table))
    print(f"executed in {time.perf_counter() - start:.0f} s of wall time")
    if not args.no_cache:
        TIMINGS.parent.mkdir(parents=True, exist_ok=True)
        TIMINGS.write_text(json.dumps(table, indent=1))
    bad = [r for r in table if r["status"] == "FAILED" or "OVER BUDGET" in r["status"]]
    for r in bad:
        print(f"error: {r['notebook']}: {r['status']} ({r['seconds'] or 0:.0f} s here, "
              f"{r.get('normalised_s') or 0:.0f} s on the reference machine, budget {r['budget_s']} s)",
              file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
