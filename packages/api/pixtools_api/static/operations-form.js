// The operation checkboxes and their settings, built from the JSON Schema of
// each operation's parameters in GET /api/limits. A setting that cannot apply
// is disabled and shows the reason next to it.

import { operationDescription, operationLabel } from "./format.js";

const DEFAULT_SELECTED = new Set(["jpg", "webp", "metadata"]);
const LOSSY_FORMATS = new Set(["jpg", "webp", "avif"]);

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "text") node.textContent = value;
    else if (name === "className") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children);
  return node;
}

// {min, max, default} of an integer property, also inside anyOf [int, null].
export function integerRange(property) {
  if (!property) return null;
  const options = property.anyOf ?? [property];
  const integer = options.find((option) => option.type === "integer") ?? {};
  return {
    min: integer.minimum ?? property.minimum ?? 1,
    max: integer.maximum ?? property.maximum ?? 100,
    default: property.default ?? null,
  };
}

function schemaProperties(operation) {
  return operation.params_schema?.properties ?? {};
}

export function acceptsParam(operation, name) {
  return Object.hasOwn(schemaProperties(operation), name);
}

// One operation: its checkbox, description and settings.
class OperationControl {
  constructor(operation, defaultQualities, onChange) {
    this.operation = operation;
    this.name = operation.name;
    this.defaultQualities = defaultQualities;
    this.onChange = onChange;
    this.properties = schemaProperties(operation);
    this.root = this.render();
    this.update();
  }

  id(suffix) {
    return `${suffix}-${this.name}`;
  }

  render() {
    const label = operationLabel(this.name);
    this.checkbox = element("input", {
      type: "checkbox",
      id: this.id("op"),
      name: "operation",
      value: this.name,
      "aria-describedby": this.id("op-desc"),
      checked: DEFAULT_SELECTED.has(this.name),
    });
    this.checkbox.addEventListener("change", () => {
      this.update();
      this.onChange();
    });

    const head = element(
      "div",
      { className: "operation-head" },
      this.checkbox,
      element("label", { for: this.id("op"), text: label }),
    );
    const description = element("p", {
      className: "hint",
      id: this.id("op-desc"),
      text: operationDescription(this.name),
    });
    this.settings = element("fieldset", { className: "operation-settings" });
    this.settings.append(element("legend", { className: "visually-hidden", text: `${label} settings` }));
    this.renderSettings();
    return element("div", { className: "operation", "data-operation": this.name }, head, description, this.settings);
  }

  renderSettings() {
    if (this.properties.format) this.renderFormat();
    if (this.properties.quality || LOSSY_FORMATS.has(this.name) || this.name === "png") {
      this.renderQuality();
    }
    if (this.properties.compress_level) this.renderCompressLevel();
    if (Object.keys(this.properties).length === 0) {
      this.settings.append(element("p", { className: "hint", text: "No settings." }));
    }
  }

  renderFormat() {
    const choices = this.properties.format.enum ?? ["png"];
    this.formatSelect = element("select", { id: this.id("format") });
    for (const choice of choices) {
      const option = element("option", { value: choice, text: operationLabel(choice) });
      if (choice === this.properties.format.default) option.selected = true;
      this.formatSelect.append(option);
    }
    this.formatSelect.addEventListener("change", () => {
      this.resetQualityToFormatDefault();
      this.update();
      this.onChange();
    });
    this.settings.append(
      element("div", { className: "setting" },
        element("label", { for: this.id("format"), text: "Output format" }),
        this.formatSelect),
    );
  }

  renderQuality() {
    const range = integerRange(this.properties.quality) ?? { min: 1, max: 100, default: null };
    const initial = range.default ?? this.defaultQualities[this.name] ?? 80;
    this.quality = element("input", {
      type: "range",
      id: this.id("quality"),
      min: range.min,
      max: range.max,
      step: 1,
      value: initial,
      "aria-describedby": this.id("quality-reason"),
    });
    this.qualityOutput = element("output", { for: this.id("quality"), id: this.id("quality-value"), text: String(initial) });
    this.quality.addEventListener("input", () => {
      this.qualityOutput.textContent = this.quality.value;
    });
    this.qualityReason = element("p", { className: "disabled-reason", id: this.id("quality-reason"), hidden: true });
    this.settings.append(
      element("div", { className: "setting" },
        element("label", { for: this.id("quality") }, "Quality ", this.qualityOutput),
        this.quality,
        this.qualityReason),
    );
  }

  renderCompressLevel() {
    const range = integerRange(this.properties.compress_level) ?? { min: 0, max: 9 };
    this.compressLevel = element("select", { id: this.id("compress-level") });
    this.compressLevel.append(element("option", { value: "", text: "Default" }));
    for (let level = range.min; level <= range.max; level += 1) {
      let note = "";
      if (level === range.min) note = " (fastest)";
      if (level === range.max) note = " (smallest)";
      this.compressLevel.append(element("option", { value: String(level), text: `${level}${note}` }));
    }
    this.settings.append(
      element("div", { className: "setting" },
        element("label", { for: this.id("compress-level"), text: "Compression level" }),
        this.compressLevel),
    );
  }

  outputFormat() {
    return this.formatSelect ? this.formatSelect.value : this.name;
  }

  resetQualityToFormatDefault() {
    if (!this.quality) return;
    const value = this.defaultQualities[this.outputFormat()];
    if (value) {
      this.quality.value = value;
      this.qualityOutput.textContent = String(value);
    }
  }

  // Return the reason the quality slider is disabled, or null when it applies.
  qualityDisabledReason() {
    const label = operationLabel(this.name);
    if (!this.checkbox.checked) return `Select ${label} to set its quality.`;
    if (this.name === "png") return "PNG is lossless, so quality does not apply.";
    if (!LOSSY_FORMATS.has(this.outputFormat())) {
      return `${operationLabel(this.outputFormat())} output is lossless, so quality does not apply. ` +
        "Choose JPEG, WebP or AVIF output to set a quality.";
    }
    return null;
  }

  update() {
    const selected = this.checkbox.checked;
    this.root?.classList.toggle("selected", selected);
    if (this.formatSelect) this.formatSelect.disabled = !selected;
    if (this.compressLevel) this.compressLevel.disabled = !selected;
    if (this.quality) {
      const reason = this.qualityDisabledReason();
      this.quality.disabled = reason !== null;
      this.qualityOutput.classList.toggle("muted", reason !== null);
      this.qualityReason.hidden = reason === null;
      this.qualityReason.textContent = reason ?? "";
    }
  }

  selected() {
    return this.checkbox.checked;
  }

  params(resize) {
    const params = {};
    if (this.formatSelect && this.outputFormat() !== this.properties.format.default) {
      params.format = this.outputFormat();
    }
    if (this.quality && !this.quality.disabled && acceptsParam(this.operation, "quality")) {
      params.quality = Number(this.quality.value);
    }
    if (this.compressLevel && this.compressLevel.value !== "") {
      params.compress_level = Number(this.compressLevel.value);
    }
    for (const [name, value] of Object.entries(resize)) {
      if (acceptsParam(this.operation, name)) params[name] = value;
    }
    return params;
  }
}

export class OperationsForm {
  constructor(container, operations, onChange) {
    const defaults = {};
    for (const operation of operations) {
      const quality = integerRange(schemaProperties(operation).quality);
      if (quality?.default) defaults[operation.name] = quality.default;
    }
    this.controls = operations.map((operation) => new OperationControl(operation, defaults, onChange));
    const fieldset = element("fieldset", { className: "operations-list", "aria-describedby": "operations-error" });
    // The step heading above already shows "Operations" on screen.
    fieldset.append(element("legend", { className: "visually-hidden", text: "Operations" }));
    for (const control of this.controls) fieldset.append(control.root);
    container.replaceChildren(fieldset);
  }

  selectedNames() {
    return this.controls.filter((control) => control.selected()).map((control) => control.name);
  }

  // True when a selected operation takes width and height.
  resizeApplies() {
    return this.controls.some((control) => control.selected() && acceptsParam(control.operation, "width"));
  }

  // operation_params of POST /api/process for the selected operations.
  params(resize) {
    const params = {};
    for (const control of this.controls) {
      if (!control.selected()) continue;
      const entry = control.params(resize);
      if (Object.keys(entry).length > 0) params[control.name] = entry;
    }
    return params;
  }

  focusFirst() {
    this.controls[0]?.checkbox.focus();
  }
}
