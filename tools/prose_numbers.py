"""List the numbers a page's prose quotes that none of its cells prints or sets (issue 26, item 1).

    python tools/prose_numbers.py [_build/html] [--chapters 05_guidance ...]     # = make prose-numbers

A sentence that quotes a number from the page's own run must get it from that run: a cell prints it, and the prose
points to the print ("the line above gives ..."), or the prose says what the table shows without typing the number.
This reads the built pages (after ``make book``: cpu profile), takes each paragraph's decimals, percentages and
"N times" / "N×", and lists those that appear in no code cell and no output of the same page. Papers' numbers,
and constants are listed too when no cell holds them: the list is for the page's author to read,
so it never fails. Paragraphs that cite a paper (a year such as "2021" or "Table 2") are marked [cites].
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"(?<![\w.])(\d+\.\d+|\d+(?=\s?(?:%|×|x\b| times\b)))")
PAGE_REFS = re.compile(r"\b(?:[Pp]ages?|[Ss]ection|Sec\.)\s*\d+\.\d+(?:\s*(?:,|and|to|or)\s*\d+\.\d+)*")
CITES = re.compile(r"\b(19|20)\d\d\b|\b(Table|Fig\.|Figure|Eq\.|Sec\.|Algorithm) \d")


def page_numbers(html: str) -> list[tuple[str, str, bool]]:
    """(number, the paragraph's first words, whether it cites) for each prose number no cell of the page holds."""
    article = BeautifulSoup(html, "html.parser").find("article") or BeautifulSoup(html, "html.parser")
    cells = article.select("div.cell")
    seen = " ".join(c.get_text(" ") for c in cells)
    for c in cells:
        c.decompose()
    for maths in article.select(".math, mjx-container, code, pre"):
        maths.decompose()
    found = []
    for block in article.find_all(["p", "li", "td"]):
        if block.find(["p", "li", "td"]):  # a list item holding a paragraph: read the paragraph once
            continue
        text = PAGE_REFS.sub("", " ".join(block.get_text(" ").split()))  # "page 6.4" is not a measurement
        for number in dict.fromkeys(NUMBER.findall(text)):
            if not re.search(rf"(?<![\d.]){re.escape(number)}(?![\d])", seen):
                found.append((number, text[:90], bool(CITES.search(text))))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", nargs="?", default=str(ROOT / "_build" / "html"))
    parser.add_argument("--chapters", nargs="*", default=[])
    args = parser.parse_args(argv)
    pages = sorted((Path(args.site) / "chapters").glob("*/0*.html"))
    pages = [p for p in pages if not args.chapters or any(p.parent.name.startswith(c) for c in args.chapters)]
    if not pages:
        print(f"no built chapter pages under {args.site}: run `make book` first")
        return 0
    total = 0
    for page in pages:
        found = page_numbers(page.read_text(errors="ignore"))
        total += len(found)
        if found:
            print(f"\n{page.relative_to(args.site)}: {len(found)}")
            for number, context, cites in found:
                print(f"  {number:>8} {'[cites]' if cites else '       '} {context}")
    print(
        f"\n{total} numbers in the prose of {len(pages)} pages appear in no cell of their page (read, then print "
        "them from the run, point to a table, or leave a paper's number with its citation)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
