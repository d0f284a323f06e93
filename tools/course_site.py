"""A small Sphinx extension for the course website (listed under ``sphinx.local_extensions`` in _config.yml).

- Each page's scripts are de-duplicated: sphinx-thebe registers its inline configuration twice under
  jupyter-book 1.0 (``const THEBE_JS_URL`` declared twice is a script error on every page).
"""

from __future__ import annotations


def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        key = (str(script), tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
