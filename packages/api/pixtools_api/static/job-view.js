// The job section: progress per operation, result previews, the before/after
// comparison for denoise, the metadata tables and the downloads.

import { adviceFor, operationAdvice } from "./advice.js";
import { createComparison } from "./compare.js";
import { formatBytes, formatDuration, formatExpiry, formatStatus, operationLabel } from "./format.js";
import { renderMetadata } from "./metadata-view.js";

const IMAGE_OPERATIONS = new Set(["jpg", "png", "webp", "avif", "denoise"]);
const STATUS_WORDS = { QUEUED: "queued", RUNNING: "running", SUCCEEDED: "done", FAILED: "failed" };
const JOB_SUMMARIES = {
  QUEUED: "Waiting for a worker.",
  RUNNING: "Processing.",
  FINALIZING: "Packing the results.",
  COMPLETED: "Completed.",
  COMPLETED_WITH_ERRORS: "Completed with errors: some operations failed.",
  FAILED: "Failed: no operation succeeded.",
  EXPIRED: "Expired: the results were deleted.",
};

function byId(id) {
  return document.getElementById(id);
}

function create(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Fill an error box with the message, the details, the advice and the code.
export function renderError(box, error) {
  box.replaceChildren();
  box.append(create("p", "error-message", error.message));
  if (Array.isArray(error.details) && error.details.length > 0) {
    const list = create("ul", "error-details");
    for (const detail of error.details) {
      list.append(create("li", "", detail.field ? `${detail.field}: ${detail.message}` : detail.message));
    }
    box.append(list);
  }
  if (Array.isArray(error.problems)) {
    const list = create("ul", "error-details");
    for (const problem of error.problems) list.append(create("li", "", problem));
    box.append(list);
  }
  const advice = error.advice ?? adviceFor(error.code, error.status);
  if (advice) box.append(create("p", "error-advice", advice));
  if (error.code && error.status) box.append(create("p", "error-code", `Error code: ${error.code} (HTTP ${error.status})`));
  box.hidden = false;
}

export class JobView {
  constructor(announce) {
    this.root = byId("job");
    this.announce = announce;
    this.rows = new Map();
    this.cards = new Map();
  }

  show(jobId, { filename, originalUrl }) {
    this.jobId = jobId;
    this.originalUrl = originalUrl ?? null;
    this.lastStatuses = new Map();
    this.lastJobStatus = null;
    this.rows.clear();
    this.cards.clear();
    this.metadataShown = false;

    byId("job-file").textContent = filename || "";
    byId("job-id").textContent = jobId;
    byId("job-expiry").textContent = "";
    byId("job-summary").textContent = "Loading the job.";
    byId("job-progress").value = 0;
    byId("job-progress-text").textContent = "";
    byId("operation-progress").replaceChildren();
    byId("results").replaceChildren();
    byId("results-heading").hidden = true;
    byId("job-extra").replaceChildren();
    byId("archive").replaceChildren();
    byId("job-error").hidden = true;
    this.setConnection(null);

    this.root.hidden = false;
    byId("job-heading").focus();
  }

  setConnection(note) {
    const element = byId("connection-note");
    element.textContent = note ?? "";
    element.hidden = !note;
  }

  showError(error) {
    renderError(byId("job-error"), error);
    byId("job-summary").textContent = "The job could not be loaded.";
  }

  update(job) {
    if (job.job_id !== this.jobId) return;
    const operations = job.operations ?? [];
    const finished = operations.filter((entry) => entry.status === "SUCCEEDED" || entry.status === "FAILED").length;

    byId("job-file").textContent = job.source?.filename ?? byId("job-file").textContent;
    byId("job-summary").textContent = JOB_SUMMARIES[job.status] ?? formatStatus(job.status);
    byId("job-summary").dataset.status = job.status;
    byId("job-progress").max = Math.max(1, operations.length);
    byId("job-progress").value = finished;
    byId("job-progress-text").textContent = `${finished} of ${operations.length} operations finished`;
    if (job.expires_at) byId("job-expiry").textContent = formatExpiry(job.expires_at);

    for (const entry of operations) {
      this.updateRow(entry);
      if (entry.status === "SUCCEEDED" && entry.result_url) this.showResult(entry, job);
    }
    this.updateArchive(job);
    this.updateJobError(job);
    this.announceChanges(job);
  }

  updateRow(entry) {
    let row = this.rows.get(entry.name);
    if (!row) {
      row = create("li", "operation-row");
      const name = create("span", "operation-name", operationLabel(entry.name));
      const bar = create("progress", "operation-bar");
      bar.max = 1;
      bar.setAttribute("aria-label", `${operationLabel(entry.name)} progress`);
      const status = create("span", "operation-status");
      const error = create("p", "operation-error");
      error.hidden = true;
      row.append(name, bar, status, error);
      byId("operation-progress").append(row);
      this.rows.set(entry.name, row);
    }
    row.dataset.operation = entry.name;
    row.dataset.status = entry.status;
    const bar = row.querySelector("progress");
    // A running operation reports no fraction, so its bar is indeterminate.
    if (entry.status === "RUNNING") bar.removeAttribute("value");
    else bar.value = entry.status === "QUEUED" ? 0 : 1;

    const duration = formatDuration(entry.started_at, entry.finished_at);
    const word = STATUS_WORDS[entry.status] ?? formatStatus(entry.status);
    row.querySelector(".operation-status").textContent = duration ? `${word}, ${duration}` : word;

    const errorBox = row.querySelector(".operation-error");
    if (entry.status === "FAILED" && entry.error) {
      const advice = operationAdvice(entry.error.code);
      errorBox.textContent = `${entry.error.message ?? "The operation failed."}${advice ? ` ${advice}` : ""}`;
      errorBox.hidden = false;
    } else {
      errorBox.hidden = true;
    }
  }

  showResult(entry, job) {
    if (this.cards.has(entry.name)) {
      // Download links are signed again on each read; keep the newest.
      this.cards.get(entry.name).querySelector("a.download-link").href = entry.result_url;
      return;
    }
    const label = operationLabel(entry.name);
    const card = create("figure", "result-card");
    card.dataset.operation = entry.name;

    if (IMAGE_OPERATIONS.has(entry.name)) {
      const image = create("img", "result-preview");
      image.src = entry.result_url;
      image.decoding = "async";
      image.alt = `${label} result, ${entry.width} × ${entry.height} pixels`;
      card.append(image);
    } else {
      card.append(create("p", "result-placeholder", "JSON document"));
    }

    const facts = [label];
    if (entry.width && entry.height) facts.push(`${entry.width} × ${entry.height} px`);
    if (entry.size_bytes) facts.push(formatBytes(entry.size_bytes));
    const caption = create("figcaption", "", facts.join(" · "));
    const link = create("a", "download-link button", `Download ${label}`);
    link.href = entry.result_url;
    link.dataset.operation = entry.name;
    link.setAttribute("download", "");
    caption.append(link);
    card.append(caption);

    this.insertInRequestOrder(card, entry.name, job);
    byId("results-heading").hidden = false;
    this.cards.set(entry.name, card);

    if (entry.name === "denoise") this.showComparison(entry);
    if (entry.name === "metadata" && job.metadata && !this.metadataShown) {
      this.metadataShown = true;
      byId("job-extra").append(renderMetadata(job.metadata));
    }
  }

  // Cards follow the order of the request, whatever order results arrive in.
  insertInRequestOrder(card, name, job) {
    const order = (job.operations ?? []).map((entry) => entry.name);
    const position = order.indexOf(name);
    const results = byId("results");
    const next = [...results.children].find(
      (other) => order.indexOf(other.dataset.operation) > position,
    );
    results.insertBefore(card, next ?? null);
  }

  showComparison(entry) {
    const extra = byId("job-extra");
    const heading = create("h3", "", "Denoise: before and after");
    if (!this.originalUrl) {
      const note = create("p", "hint",
        "The before/after comparison needs the original file, which this page keeps only until it is reloaded.");
      extra.prepend(heading, note);
      return;
    }
    const comparison = createComparison({
      beforeUrl: this.originalUrl,
      afterUrl: entry.result_url,
      title: "Denoise",
    });
    const section = create("section", "comparison");
    section.append(heading, comparison);
    extra.prepend(section);
  }

  updateArchive(job) {
    const archive = byId("archive");
    if (!job.archive_url) {
      archive.replaceChildren();
      return;
    }
    let link = archive.querySelector("a");
    if (!link) {
      link = create("a", "button primary", "Download all results (ZIP)");
      link.id = "archive-link";
      link.setAttribute("download", "");
      archive.append(link);
    }
    link.href = job.archive_url;
  }

  updateJobError(job) {
    const box = byId("job-error");
    if (job.status === "FAILED" || job.status === "EXPIRED" || job.error_message) {
      renderError(box, {
        message: job.error_message ?? JOB_SUMMARIES[job.status],
        advice: job.status === "EXPIRED" ? "Submit the image again to process it." : "Check the failed operations above.",
      });
    } else {
      box.hidden = true;
    }
  }

  announceChanges(job) {
    const messages = [];
    for (const entry of job.operations ?? []) {
      const previous = this.lastStatuses.get(entry.name);
      if (previous !== entry.status && (entry.status === "SUCCEEDED" || entry.status === "FAILED")) {
        messages.push(`${operationLabel(entry.name)} ${STATUS_WORDS[entry.status]}.`);
      }
      this.lastStatuses.set(entry.name, entry.status);
    }
    if (job.status !== this.lastJobStatus) {
      this.lastJobStatus = job.status;
      if (JOB_SUMMARIES[job.status] && job.status !== "RUNNING") messages.push(`Job ${JOB_SUMMARIES[job.status].toLowerCase()}`);
    }
    if (messages.length > 0) this.announce(messages.join(" "));
  }
}
