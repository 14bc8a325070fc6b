// The upload form: file picker and drop zone with local checks, the
// operations, the resize box and the optional webhook and API key.

import { readApiKey, storeApiKey } from "./api.js";
import { acceptAttribute, checkDimensions, checkFile, formatName, inputFormats } from "./file-checks.js";
import { formatBytes, formatPixels } from "./format.js";
import { OperationsForm } from "./operations-form.js";

function byId(id) {
  return document.getElementById(id);
}

function showFieldError(box, input, problems) {
  box.replaceChildren();
  for (const problem of problems) {
    const line = document.createElement("span");
    line.textContent = problem;
    box.append(line);
  }
  box.hidden = problems.length === 0;
  if (input) {
    if (problems.length > 0) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
}

// Load the file into an <img> to learn its size; null when the browser
// cannot decode the format (TIFF in most browsers).
function measureImage(image, url) {
  return new Promise((resolve) => {
    image.onload = () => resolve({ width: image.naturalWidth, height: image.naturalHeight });
    image.onerror = () => resolve(null);
    image.src = url;
  });
}

export class UploadForm {
  constructor(limits, { onFileChosen } = {}) {
    this.limits = limits;
    this.onFileChosen = onFileChosen;
    this.file = null;
    this.previewUrl = null;
    this.fileProblems = [];
    this.fileCheck = Promise.resolve();

    this.input = byId("file");
    this.dropZone = byId("drop-zone");
    this.fileError = byId("file-error");
    this.operationsError = byId("operations-error");
    this.resizeError = byId("resize-error");
    this.width = byId("width");
    this.height = byId("height");
    this.allowUpscale = byId("allow-upscale");
    this.webhook = byId("webhook-url");
    this.apiKey = byId("api-key");

    this.renderLimits();
    this.operations = new OperationsForm(byId("operations"), limits.operations, () => this.updateResize());
    this.updateResize();
    this.bindFileEvents();
    this.apiKey.value = readApiKey();
    this.apiKey.addEventListener("change", () => storeApiKey(this.apiKey.value.trim()));
  }

  renderLimits() {
    const names = inputFormats(this.limits).map((entry) => formatName(entry.format)).join(", ");
    byId("limits").textContent =
      `${names}. Up to ${formatBytes(this.limits.max_upload_bytes)}, ` +
      `${formatPixels(this.limits.max_image_pixels)} and ` +
      `${this.limits.max_image_side.toLocaleString()} pixels a side.`;
    this.input.accept = acceptAttribute(this.limits);
    for (const field of [this.width, this.height]) field.max = String(this.limits.max_image_side);
  }

  bindFileEvents() {
    this.input.addEventListener("change", () => {
      const file = this.input.files?.[0];
      if (file) this.fileCheck = this.chooseFile(file);
    });

    for (const name of ["dragenter", "dragover"]) {
      this.dropZone.addEventListener(name, (event) => {
        event.preventDefault();
        this.dropZone.classList.add("dragging");
      });
    }
    for (const name of ["dragleave", "dragend"]) {
      this.dropZone.addEventListener(name, () => this.dropZone.classList.remove("dragging"));
    }
    this.dropZone.addEventListener("drop", (event) => {
      event.preventDefault();
      this.dropZone.classList.remove("dragging");
      const files = event.dataTransfer?.files;
      if (!files || files.length === 0) return;
      this.input.files = files;
      this.fileCheck = this.chooseFile(files[0], files.length);
    });
    // A file dropped next to the zone must not replace the page.
    for (const name of ["dragover", "drop"]) {
      document.addEventListener(name, (event) => event.preventDefault());
    }
  }

  async chooseFile(file, count = 1) {
    this.file = file;
    if (this.previewUrl && !this.previewUrl.attached) URL.revokeObjectURL(this.previewUrl.url);
    this.previewUrl = { url: URL.createObjectURL(file), attached: false };

    const problems = await checkFile(file, this.limits);
    // Another file may have been chosen while this one was being read.
    if (this.file !== file) return;

    const preview = byId("file-preview");
    const size = problems.length === 0 ? await measureImage(preview, this.previewUrl.url) : null;
    if (this.file !== file) return;
    byId("file-summary").hidden = false;
    preview.hidden = size === null;
    byId("file-name").textContent = file.name;
    const details = [formatBytes(file.size)];
    if (size) {
      details.push(`${size.width} × ${size.height} px`);
      problems.push(...checkDimensions(size.width, size.height, this.limits));
    } else if (problems.length === 0) {
      details.push("no preview in this browser");
    }
    byId("file-details").textContent = details.join(" · ");

    this.fileProblems = problems;
    const notes = count > 1 ? [`${count} files were dropped; only ${file.name} is used.`] : [];
    showFieldError(this.fileError, this.input, [...problems, ...notes]);
    this.onFileChosen?.(file);
  }

  updateResize() {
    const applies = this.operations.resizeApplies();
    byId("resize").disabled = !applies;
    const reason = byId("resize-reason");
    reason.hidden = applies;
    reason.textContent = applies ? "" : "Resizing applies to image outputs; select JPEG, PNG, WebP, AVIF or Denoise.";
  }

  readSize(field, label) {
    const text = field.value.trim();
    if (text === "") return { value: null };
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1 || value > this.limits.max_image_side) {
      return { error: `${label} must be a whole number from 1 to ${this.limits.max_image_side}.` };
    }
    return { value };
  }

  // Check everything; return {problems, focus} where focus is the first bad field.
  async validate() {
    await this.fileCheck;
    const problems = [];
    let focus = null;

    if (!this.file) {
      showFieldError(this.fileError, this.input, ["Choose an image file first."]);
      problems.push("Choose an image file first.");
      focus = this.input;
    } else if (this.fileProblems.length > 0) {
      problems.push(...this.fileProblems);
      focus = this.input;
    }

    const names = this.operations.selectedNames();
    const noOperation = names.length === 0 ? ["Select at least one operation."] : [];
    showFieldError(this.operationsError, null, noOperation);
    if (noOperation.length > 0) {
      problems.push(...noOperation);
      if (!focus) focus = { focus: () => this.operations.focusFirst() };
    }

    const sizeProblems = [];
    if (!byId("resize").disabled) {
      for (const [field, label] of [[this.width, "Width"], [this.height, "Height"]]) {
        const { error } = this.readSize(field, label);
        if (error) {
          sizeProblems.push(error);
          field.setAttribute("aria-invalid", "true");
          if (!focus) focus = field;
        } else {
          field.removeAttribute("aria-invalid");
        }
      }
    }
    showFieldError(this.resizeError, null, sizeProblems);
    problems.push(...sizeProblems);
    return { problems, focus };
  }

  // The fields of POST /api/process; call after validate() found no problem.
  request() {
    const resize = {};
    if (!byId("resize").disabled) {
      const width = this.readSize(this.width, "Width").value;
      const height = this.readSize(this.height, "Height").value;
      if (width !== null) resize.width = width;
      if (height !== null) resize.height = height;
      if (this.allowUpscale.checked) resize.allow_upscale = true;
    }
    return {
      file: this.file,
      operations: this.operations.selectedNames(),
      params: this.operations.params(resize),
      webhookUrl: this.webhook.value.trim(),
    };
  }

  // The local URL of the chosen file, kept for the job's before/after view.
  takePreviewUrl() {
    if (!this.previewUrl) return null;
    this.previewUrl.attached = true;
    return this.previewUrl.url;
  }
}
