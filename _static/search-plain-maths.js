// Search results without raw TeX (issue 26, item 6). Sphinx's search cuts each result's summary from the page's
// text, where the maths is still TeX ("\(\sigma_t(\eta)\)"), and adds it after MathJax has run. Rewrite such text as
// plain Unicode (σ_t(η), x̄, ε̂) as results arrive; the results' titles too (the search index holds their TeX). The
// sidebar's titles are typeset by MathJax, which tools/course_site.py loads on every page. tools/site_test.py checks the results for raw TeX.
(() => {
  if (!document.getElementById("search-results") && !location.pathname.endsWith("search.html")) return;
  const symbols = {
    alpha: "α", beta: "β", gamma: "γ", delta: "δ", Delta: "Δ", epsilon: "ε", varepsilon: "ε", eta: "η",
    theta: "θ", lambda: "λ", mu: "μ", pi: "π", rho: "ρ", sigma: "σ", Sigma: "Σ", tau: "τ", phi: "φ",
    varphi: "φ", psi: "ψ", omega: "ω", Omega: "Ω", xi: "ξ", nabla: "∇", partial: "∂", sqrt: "√", cdot: "·",
    times: "×", approx: "≈", le: "≤", leq: "≤", ge: "≥", geq: "≥", ne: "≠", neq: "≠", to: "→",
    rightarrow: "→", leftarrow: "←", infty: "∞", sim: "~", mid: "|", ldots: "…", dots: "…", cdots: "…",
    sum: "Σ", prod: "Π", int: "∫", log: "log", exp: "exp", min: "min", max: "max", varnothing: "∅",
    emptyset: "∅", in: "∈", propto: "∝", top: "ᵀ", quad: " ", qquad: " ", lVert: "‖", rVert: "‖",
    Vert: "‖", mathbb: "", big: "", Big: "", left: "", right: "",
  };
  const accents = { bar: "\u0304", hat: "\u0302", tilde: "\u0303", dot: "\u0307", overline: "\u0305" };
  const plain = (tex) => {
    let s = tex.replace(/\\[()[\]]|\$\$/g, "");
    for (let i = 0; i < 4; i++)  // innermost first: \bar{\alpha}_t, \mathbf{x}_{t-1}
      s = s.replace(/\\(bar|hat|tilde|dot|overline)\{([^{}]*)\}/g, (m, a, x) => x + accents[a])
        .replace(/\\(?:mathbf|mathrm|mathcal|mathsf|text|textrm|operatorname|boldsymbol)\{([^{}]*)\}/g, "$1")
        .replace(/\\frac\{([^{}]*)\}\{([^{}]*)\}/g, "($1)/($2)");
    return s.replace(/\\([A-Za-z]+)/g, (m, w) => symbols[w] ?? w).replace(/\\[,;:! ]/g, " ")
      .replace(/[{}]/g, "");
  };
  const hasTeX = /\\[()[\]]|\\[A-Za-z]+/;
  const clean = (root) => {
    for (const p of root.querySelectorAll("ul.search li")) {  // the titles and the summaries
      const walker = document.createTreeWalker(p, NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode(); node; node = walker.nextNode())
        if (hasTeX.test(node.nodeValue)) node.nodeValue = plain(node.nodeValue);
    }
  };
  const start = () => {
    const results = document.getElementById("search-results");
    if (!results) return;
    clean(results);
    new MutationObserver(() => clean(results)).observe(results, { childList: true, subtree: true });
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
