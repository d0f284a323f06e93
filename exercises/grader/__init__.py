"""The isolated grader: a submission runs in its own unprivileged process; tests, expected values and scores stay here.

- ``wire``: what crosses the boundary (plain data and safetensors; never pickle);
- ``worker``: the submission's side (runs its cells, answers calls), started by ``sandbox``;
- ``sandbox``: starts, limits, talks to and kills the submission's process; ``Remote`` proxies;
- ``runner``: grades one notebook with the tests of an otter autograder bundle.

``exercises/tools.py grade`` and ``grade-all`` (``make grade``, ``make grade-all``) use it; see exercises/README.md.
"""
