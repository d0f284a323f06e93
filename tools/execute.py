"""Execute the book's notebooks once, into the cache the book build reads, and time each one against its budget.

    python tools/execute.py [--profile cpu] [--chapters 05_guidance ...] [--kernel NAME] [NOTEBOOK ...]
    python tools/execute.py --report                          # print the last run's table again

Every notebook the book executes (those in ``_toc.yml`` that ``_config.yml``'s ``execute.exclude_patterns`` does
not exclude) runs in its own kernel with ``COURSE_PROFILE`` set; a notebook whose code cells did not change since
it last ran in the same profile, against the same library, is not run again. Its outputs go into the jupyter-cache
that ``jupyter-book build`` (``execute_notebooks: cache``) merges into the pages, so the book build itself executes
nothing that ran here. The cache is keyed by the profile, the kernel and a hash of ``course_lib`` (code and
checkpoints) and of the pinned environment: changing any of them re-runs every notebook.

``--chapters`` runs only those chapters' notebooks (``make book CHAPTERS=05_guidance``: what the author of a page
runs); ``--kernel`` runs them in another installed kernel (CI uses the kernel of a fresh venv that holds the
released package, as a student's Colab does).

**Only a notebook that fails makes this command fail** (a cell that raises, a check cell whose assert does not
hold, or a cell that runs past ``TIMEOUT_S``, the runaway cap). Time is measured, never gated: the table at the end
gives each notebook's seconds against its budget (``BUDGET_S``, from ../shared/COURSE_PLAN.md, for a 2-core
machine) and marks those over it, which is a warning for the page's author, not an error, because a shared or
slow machine must not fail a page whose results are right. The table is also written to ``_build/timings.json``.
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
PARTIAL_CONFIG = ROOT / "_build" / "_config.partial.yml"
TIMEOUT_S = 600  # one cell: the runaway cap (a page's check cells take seconds to minutes)


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
    return [
        p for p in dict.fromkeys(found) if not any(PurePosixPath(p.resolve().as_posix()).match(pat) for pat in excluded)
    ]


def select_chapters(notebooks: list[Path], chapters: list[str]) -> list[Path]:
    """The notebooks of the named chapter folders (``05_guidance``, or a prefix such as ``05``)."""
    folders = sorted({p.parent.name for p in notebooks if p.parent.parent.name == "chapters"})
    chosen = [f for f in folders if any(f.startswith(c.rstrip("/")) for c in chapters)]
    unknown = [c for c in chapters if not any(f.startswith(c.rstrip("/")) for f in folders)]
    if unknown:
        raise SystemExit(
            f"no chapter folder matches {unknown}; the chapters are: {', '.join(folders)} "
            f"(CHAPTERS takes folder names or their leading numbers, e.g. CHAPTERS=05_guidance or 05)"
        )
    return [p for p in notebooks if p.parent.name in chosen]


def environment_key(profile: str, kernel: str | None) -> dict:
    """What every page's outputs depend on besides its own cells: the profile, the kernel, the library, the pins."""
    digest = hashlib.sha256()
    files = sorted(p for p in (ROOT / "course_lib").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in files + [ROOT / "requirements" / "lock.txt"]:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return {"profile": profile, "kernel": kernel or "python3", "inputs_sha256": digest.hexdigest()}


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


def _run(path: str, profile: str, threads: int, kernel: str | None) -> dict:
    """Execute one notebook in a fresh kernel (in a worker process); return its outputs and its time."""
    from jupyter_cache.executors.utils import single_nb_execution

    os.environ.update(COURSE_PROFILE=profile, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    nb = nbformat.read(path, as_version=4)
    kernelspec = nb.metadata.get("kernelspec")
    start = time.perf_counter()
    result = single_nb_execution(
        nb,
        cwd=str(Path(path).parent),
        timeout=TIMEOUT_S,
        allow_errors=False,
        **({"kernel_name": kernel} if kernel else {}),
    )
    seconds = time.perf_counter() - start
    if kernelspec is not None:  # the cache matches pages by their source's metadata, not the kernel that ran them
        result.nb.metadata["kernelspec"] = kernelspec
    return {"nb": nbformat.writes(result.nb), "seconds": seconds, "error": result.exc_string}


def execute(
    notebooks: list[Path],
    profile: str,
    jobs: int = 1,
    force: bool = False,
    use_cache: bool = True,
    kernel: str | None = None,
) -> list[dict]:
    """Run every notebook of ``notebooks`` not in the cache (all of them if not ``use_cache``); return one row
    per notebook (in order)."""
    from jupyter_cache.base import CacheBundleIn

    cache = _open_cache(environment_key(profile, kernel), force) if use_cache else None
    rows, todo = {}, []
    for path in notebooks:
        if cache is None:
            todo.append(path)
            continue
        try:
            record = cache.match_cache_notebook(nbformat.read(path, as_version=4))
            rows[path] = {"status": "cached", "seconds": record.data.get("execution_seconds")}
        except KeyError:
            todo.append(path)
    threads = max(1, (os.cpu_count() or 2) // max(jobs, 1))
    print(
        f"executing {len(todo)} of {len(notebooks)} notebooks (profile {profile}, kernel {kernel or 'python3'}, "
        f"{jobs} at a time, {threads} thread(s) each); {len(notebooks) - len(todo)} unchanged, from the cache",
        flush=True,
    )
    with ProcessPoolExecutor(max_workers=max(jobs, 1)) as pool:
        futures = {path: pool.submit(_run, str(path), profile, threads, kernel) for path in todo}
        for path, future in futures.items():
            out = future.result()
            name = path.relative_to(ROOT)
            if out["error"]:
                rows[path] = {"status": "FAILED", "seconds": out["seconds"], "error": out["error"]}
                print(f"FAILED {name} after {out['seconds']:.0f} s:\n{out['error']}", flush=True)
                continue
            if cache is not None:
                cache.cache_notebook_bundle(
                    CacheBundleIn(
                        nbformat.reads(out["nb"], as_version=4), str(path), data={"execution_seconds": out["seconds"]}
                    ),
                    check_validity=False,
                    overwrite=True,
                )
            rows[path] = {"status": "ran", "seconds": out["seconds"]}
            print(f"ran {name} in {out['seconds']:.0f} s", flush=True)
    budget = BUDGET_S.get(profile)
    table = []
    for path in notebooks:
        row = {
            "notebook": str(path.relative_to(ROOT)),
            "profile": profile,
            "budget_s": budget,
            "jobs": jobs,
            **rows[path],
        }
        row["over_budget"] = bool(budget is not None and (row["seconds"] or 0) > budget)
        table.append(row)
    return table


def format_table(table: list[dict]) -> str:
    width = max([len("notebook"), *(len(r["notebook"]) for r in table)])
    lines = [f"{'notebook':<{width}}  profile  seconds  budget  status"]
    for r in table:
        seconds = "?" if r["seconds"] is None else f"{r['seconds']:.0f}"
        budget = "-" if r["budget_s"] is None else f"{r['budget_s']:.0f}"
        status = r["status"] + (", over budget (warning)" if r.get("over_budget") else "")
        lines.append(f"{r['notebook']:<{width}}  {r['profile']:<7}  {seconds:>7}  {budget:>6}  {status}")
    total = sum(r["seconds"] or 0 for r in table)
    lines.append(f"{'total (notebook-seconds)':<{width}}  {'':<7}  {total:>7.0f}")
    over = [r for r in table if r.get("over_budget")]
    if over:
        lines.append(
            f"warning: {len(over)} notebook(s) over the {table[0]['profile']} budget on this machine; "
            "time is not gated (a busy host is slower), but a page written over budget should be trimmed "
            "with pick(...)"
        )
    return "\n".join(lines)


def write_partial_config() -> Path:
    """``_config.yml`` with every book notebook that has no cached outputs added to ``execute.exclude_patterns``,
    so that ``jupyter-book build --config`` renders them without outputs instead of executing them (used after a
    ``--chapters`` run: the other chapters' pages come from the cache when it has them)."""
    from jupyter_cache import get_cache

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    cache = get_cache(str(CACHE))
    missing = []
    for path in book_notebooks():
        try:
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            missing.append(str(path.relative_to(ROOT)))
    config.setdefault("execute", {}).setdefault("exclude_patterns", []).extend(missing)
    config["execute"]["cache"] = str(CACHE)
    local = config.get("sphinx", {}).get("local_extensions") or {}  # relative to the repository, not to _build/
    if local:
        config["sphinx"]["local_extensions"] = {name: str(ROOT / path) for name, path in local.items()}
    PARTIAL_CONFIG.parent.mkdir(parents=True, exist_ok=True)
    PARTIAL_CONFIG.write_text(yaml.safe_dump(config, sort_keys=False))
    if missing:
        print(
            f"{len(missing)} other notebook(s) have no outputs in the cache; their pages are built without "
            f"outputs (`make book` runs them all)"
        )
    return PARTIAL_CONFIG


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="default: every notebook the book executes")
    parser.add_argument("--profile", default=os.environ.get("COURSE_PROFILE", "cpu"), choices=sorted(BUDGET_S))
    parser.add_argument(
        "--chapters",
        nargs="*",
        default=None,
        help="only these chapter folders (names or leading numbers, e.g. 05_guidance or 05)",
    )
    parser.add_argument("--kernel", default=None, help="the kernel to run them in (default: the notebooks' own)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=int(os.environ.get("BOOK_JOBS", "1")),
        help="notebooks run at once (each gets cores / jobs threads); times are measured so",
    )
    parser.add_argument("--force", action="store_true", help="empty the cache and run everything")
    parser.add_argument("--no-cache", action="store_true", help="run everything, leave the cache alone")
    parser.add_argument(
        "--partial-config",
        action="store_true",
        help="also write _build/_config.partial.yml for a build of the chapters run here",
    )
    parser.add_argument("--report", action="store_true", help="print the table of the last run and exit")
    args = parser.parse_args(argv)
    if args.report:
        if not TIMINGS.exists():
            print(f"no timings yet ({TIMINGS} is written by `make book`)")
            return 0
        print(format_table(json.loads(TIMINGS.read_text())))
        return 0
    notebooks = [Path(p).resolve() for p in args.notebooks] or book_notebooks()
    if args.chapters:
        notebooks = select_chapters(notebooks, args.chapters)
    start = time.perf_counter()
    table = execute(notebooks, args.profile, args.jobs, args.force, use_cache=not args.no_cache, kernel=args.kernel)
    print("\n" + format_table(table))
    print(f"executed in {time.perf_counter() - start:.0f} s of wall time")
    if not args.no_cache:
        TIMINGS.parent.mkdir(parents=True, exist_ok=True)
        TIMINGS.write_text(json.dumps(table, indent=1))
    if args.partial_config and not args.no_cache:
        write_partial_config()
    failed = [r for r in table if r["status"] == "FAILED"]
    for r in failed:
        print(
            f"error: {r['notebook']} failed after {r['seconds'] or 0:.0f} s (see its traceback above)", file=sys.stderr
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
