"""Re-measure the held-out bits/dim of the shipped improved-DDPM checkpoints and update their manifest entries.

The weights (and their SHA-256) do not change; only ``metrics.test_bits_per_dim*`` do. Used once, when the
strata gained their ``tail`` (the clipped last step of the cosine schedule on its own): run
``.venv/bin/python tools/remeasure_iddpm.py``.
"""

import json

from course_lib.checkpoints import CHECKPOINT_DIR, read_manifest
from course_lib.recipes import held_out_bits_per_dim
from course_lib.unet import UNet

manifest = read_manifest()
for name, variance in [("iddpm_digits_cosine", "fixed_small"), ("iddpm_digits_hybrid", "learned_range")]:
    old = manifest[name]["metrics"]["test_bits_per_dim"]
    new = held_out_bits_per_dim(UNet.from_pretrained(name).eval(), variance)
    manifest[name]["metrics"] |= new
    print(f"{name}: {old:.4f} -> {new['test_bits_per_dim']:.4f} +- {new['test_bits_per_dim_stderr']:.4f} bits/dim")
(CHECKPOINT_DIR / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
