// Before/after comparison: the original upload over the denoised result,
// cut at a position set with a range input (keyboard and touch friendly).

let comparisonCount = 0;

export function createComparison({ beforeUrl, afterUrl, title }) {
  comparisonCount += 1;
  const sliderId = `compare-slider-${comparisonCount}`;

  const figure = document.createElement("figure");
  figure.className = "compare";

  const frame = document.createElement("div");
  frame.className = "compare-frame";
  frame.style.setProperty("--position", "50%");

  const after = document.createElement("img");
  after.className = "compare-after";
  after.src = afterUrl;
  after.alt = `${title}: denoised result`;

  const before = document.createElement("img");
  before.className = "compare-before";
  before.src = beforeUrl;
  before.alt = `${title}: original upload`;

  const divider = document.createElement("div");
  divider.className = "compare-divider";
  divider.setAttribute("aria-hidden", "true");
  frame.append(after, before, divider);

  const label = document.createElement("label");
  label.htmlFor = sliderId;
  label.textContent = "Share of the original shown";

  const slider = document.createElement("input");
  slider.type = "range";
  slider.id = sliderId;
  slider.className = "compare-slider";
  slider.min = "0";
  slider.max = "100";
  slider.value = "50";
  const describe = () => {
    const value = Number(slider.value);
    frame.style.setProperty("--position", `${value}%`);
    slider.setAttribute("aria-valuetext", `${value}% original, ${100 - value}% denoised`);
  };
  slider.addEventListener("input", describe);
  describe();

  const caption = document.createElement("figcaption");
  caption.textContent = "Left of the line: original upload. Right: denoised result.";

  figure.append(frame, label, slider, caption);
  return figure;
}
