"""A small Sphinx extension for the course website (listed under ``sphinx.local_extensions`` in _config.yml).

- Each page's scripts are de-duplicated: under jupyter-book 1.0 sphinx-thebe and sphinx-togglebutton register
  their inline configuration twice (once with filename None, once with "") (``const THEBE_JS_URL`` declared twice is a script error
  on every page).
- MathJax is loaded on every page (Sphinx loads it only where a page has equations), so that page titles with
  maths typeset in the sidebar of every page, the search page's included (``_static/search-plain-maths.js`` turns
  the TeX of the search results' summaries into plain text).
- The theme's colour mode defaults to "auto" (pydata-sphinx-theme reads ``default_mode`` from the page context;
  left empty, every first visit logs "Got invalid theme mode" as a console error).
"""

from __future__ import annotations


def _page_context(app, pagename, templatename, context, doctree) -> None:
    if not context.get("default_mode"):
        context["default_mode"] = "auto"
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        key = (
            str(getattr(script, "filename", script) or ""),  # an inline script is registered once with
            # filename None and once with ""
            tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items())),
        )
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept


def setup(app):
    app.set_html_assets_policy("always")
    app.connect("html-page-context", _page_context, priority=100)  # early: a later handler may end the event
    return {"parallel_read_safe": True, "parallel_write_safe": True}
