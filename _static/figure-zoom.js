// Click-to-zoom for figures the text column shrinks (issue 26): a click on a figure drawn narrower than its natural
// width shows it over the page at that width, or fitted to the window but never below 80 % of it (the window then
// scrolls sideways); a click or Escape closes it.
// Jupyter Book loads every .js and .css of _static/ on every page. tools/site_test.py measures the shrinking.
(() => {
  const natural = (img) => Number(img.getAttribute("width")) || img.naturalWidth;  // as tools/site_test.py
  const zoomable = (el) => el instanceof HTMLImageElement && !!el.closest("article") &&
    !el.closest("a, .animation, .course-slider") && natural(el) >= 100 &&
    el.getBoundingClientRect().width < natural(el) - 1;
  document.addEventListener("mouseover", (event) => {
    if (event.target instanceof HTMLImageElement) event.target.classList.toggle("course-zoomable", zoomable(event.target));
  });
  document.addEventListener("click", (event) => {
    if (!zoomable(event.target)) return;
    const overlay = document.createElement("div"), big = new Image();
    overlay.className = "course-zoom";
    overlay.title = "click or Escape to close";
    big.src = event.target.currentSrc || event.target.src;
    big.alt = event.target.alt;
    big.style.width = natural(event.target) + "px";
    big.style.maxWidth = `max(100%, ${Math.round(0.8 * natural(event.target))}px)`;
    overlay.append(big);
    const onKey = (key) => { if (key.key === "Escape") close(); };
    const close = () => { overlay.remove(); document.removeEventListener("keydown", onKey); };
    overlay.addEventListener("click", close);
    document.addEventListener("keydown", onKey);
    document.body.append(overlay);
  });
})();
