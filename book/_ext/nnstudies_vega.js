// Draws every nnstudies explorer on the page with the Vega libraries bundled around this file
// (book/_ext/nnstudies_vega.py). Each explorer is a div[data-nnstudies-explorer] holding a PNG
// fallback and its Vega-Lite spec as JSON (lib/nnstudies/explorer.py); the PNG is hidden once the
// chart is drawn. The Vega view is kept on the div as `nnstudiesView` (the browser test reads it).

async function nnstudiesDraw(el) {
  const spec = JSON.parse(el.querySelector("script.nnstudies-explorer-spec").textContent);
  const target = document.createElement("div");
  target.className = "nnstudies-explorer-chart";
  el.appendChild(target);
  const result = await vegaEmbed(target, spec, { actions: false, renderer: "svg" });
  // A slider moves over its grid's index; its readout shows the grid value instead.
  const readouts = ((spec.usermeta || {}).nnstudies || {}).readouts || {};
  for (const [signal, labels] of Object.entries(readouts)) {
    const input = target.querySelector(`input[type="range"][name="${signal}"]`);
    if (!input || !input.nextElementSibling) continue;
    const readout = input.nextElementSibling;
    const show = (index) => { readout.textContent = labels[index] ?? readout.textContent; };
    input.addEventListener("input", () => show(+input.value));
    input.addEventListener("change", () => show(+input.value));
    result.view.addSignalListener(signal, (_name, index) => show(index));
    show(result.view.signal(signal));
  }
  el.nnstudiesView = result.view;
  const img = el.querySelector("img.nnstudies-explorer-fallback");
  if (img) img.hidden = true;
  el.dataset.nnstudiesReady = "1";
}

function nnstudiesDrawAll() {
  for (const el of document.querySelectorAll("div[data-nnstudies-explorer]")) {
    if (el.dataset.nnstudiesStarted) continue;
    el.dataset.nnstudiesStarted = "1";
    nnstudiesDraw(el).catch((error) => console.error("nnstudies explorer: the chart could not be drawn; the PNG stays.", error));
  }
}

window.nnstudiesVega = { vegaEmbed, vega, vegaLite, drawAll: nnstudiesDrawAll };
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", nnstudiesDrawAll);
else nnstudiesDrawAll();
