// cairn UI: small progressive enhancements. Every page works without this file.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Selects marked data-autosubmit submit their form when changed.
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }

  // Copy buttons: copy the text of the element they name (the Clipboard API where the page is
  // a secure context; else the selection and execCommand, which plain-HTTP servers need).
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.hidden = false;
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      const text = source.textContent;
      let done = false;
      if (navigator.clipboard && window.isSecureContext) {
        try {
          await navigator.clipboard.writeText(text);
          done = true;
        } catch (e) {
          done = false;
        }
      }
      if (!done) {
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        done = document.execCommand("copy");
        selection.removeAllRanges();
      }
      button.textContent = done ? "Copied" : "Select and copy";
      button.classList.toggle("copied", done);
      setTimeout(() => { button.textContent = "Copy"; button.classList.remove("copied"); }, 1500);
    });
  }

  // Versions table: "Compare ticked" is enabled when exactly two versions are ticked.
  const compare = document.getElementById("compare-button");
  if (compare) {
    const boxes = Array.from(document.querySelectorAll('input[name="compare"]'));
    const update = () => { compare.disabled = boxes.filter((b) => b.checked).length !== 2; };
    for (const b of boxes) b.addEventListener("change", update);
    update();
  }

  // Lineage: zoom buttons, and the edges of the node under the pointer highlighted.
  const svg = document.querySelector("svg.graph");
  if (!svg) return;
  const width = Number(svg.getAttribute("width"));
  const height = Number(svg.getAttribute("height"));
  const wrap = svg.parentElement;
  let scale = 1;
  const apply = () => {
    svg.setAttribute("width", String(Math.round(width * scale)));
    svg.setAttribute("height", String(Math.round(height * scale)));
  };
  const zoom = document.querySelector(".zoom");
  if (zoom) {
    zoom.hidden = false;
    zoom.addEventListener("click", (event) => {
      const action = event.target.closest("button")?.dataset.zoom;
      if (action === "in") scale = Math.min(scale * 1.25, 3);
      else if (action === "out") scale = Math.max(scale / 1.25, 0.1);
      else if (action === "fit") scale = Math.min(1, (wrap.clientWidth - 4) / width, (window.innerHeight * 0.75) / height);
      apply();
    });
  }
  // A graph whose width fits at a readable size is shown that wide; then the centre node is
  // scrolled into view (a tall graph can have it far down).
  const fit = Math.min(1, (wrap.clientWidth - 4) / width);
  if (fit >= 0.6) {
    scale = fit;
    apply();
  }
  const center = svg.querySelector(".node.center rect");
  if (center) {
    const x = Number(center.getAttribute("x")) * scale, y = Number(center.getAttribute("y")) * scale;
    wrap.scrollLeft = Math.max(0, x - wrap.clientWidth / 2 + 90 * scale);
    wrap.scrollTop = Math.max(0, y - wrap.clientHeight / 2 + 22 * scale);
  }
  const edges = Array.from(svg.querySelectorAll(".edge"));
  for (const node of svg.querySelectorAll(".node")) {
    const key = node.dataset.key;
    node.addEventListener("mouseenter", () => {
      for (const e of edges) if (e.dataset.source === key || e.dataset.target === key) e.classList.add("hot");
    });
    node.addEventListener("mouseleave", () => {
      for (const e of edges) e.classList.remove("hot");
    });
  }
});
