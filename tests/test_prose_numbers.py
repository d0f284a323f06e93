"""tools/prose_numbers.py finds the numbers a page's prose quotes that no cell of the page holds (issue 26, item 1)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import prose_numbers  # noqa: E402

PAGE = """<html><body><article>
<p>Accuracy rose to 0.73 (printed above) and recall to 0.91, about 12 times the base model's; see page 6.4.</p>
<p>Ho et al. (2020, Table 2) report an FID of 3.17.</p>
<div class="cell"><div class="cell_input"><pre>steps = 500</pre></div>
<div class="cell_output"><pre>accuracy 0.73 | recall 0.9</pre></div></div>
<p>After 500 steps the loss is <span class="math">\\(0.25\\)</span> of its start.</p>
</article></body></html>"""


def test_lists_only_numbers_no_cell_holds_and_marks_citations():
    found = {number: cites for number, _, cites in prose_numbers.page_numbers(PAGE)}
    # 0.73 is printed; 0.91 is not (0.9 is another number); "12 times" is not; page 6.4 is a reference;
    # 3.17 is a paper's, marked; 0.25 is maths.
    assert found == {"0.91": False, "12": False, "3.17": True}
