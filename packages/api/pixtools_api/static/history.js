// Recent jobs in localStorage, listed with their expiry; the list survives a
// reload. Expired entries are dropped when the list loads.

import { formatDateTime, formatExpiry, formatStatus, operationLabel } from "./format.js";

const STORAGE_KEY = "pixtools.recentJobs.v1";
const MAX_ENTRIES = 30;
// Entries whose job never reported expires_at are kept this long.
const UNKNOWN_EXPIRY_MS = 7 * 24 * 3600 * 1000;

function readEntries() {
  try {
    const parsed = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "[]");
    return Array.isArray(parsed) ? parsed.filter((entry) => typeof entry?.job_id === "string") : [];
  } catch {
    return [];
  }
}

function writeEntries(entries) {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(entries));
    return true;
  } catch {
    return false;
  }
}

function isExpired(entry, now) {
  if (entry.expires_at) return new Date(entry.expires_at).getTime() <= now;
  return new Date(entry.created_at).getTime() + UNKNOWN_EXPIRY_MS <= now;
}

export class JobHistory {
  constructor(list, emptyNote, clearButton, { onOpen }) {
    this.list = list;
    this.emptyNote = emptyNote;
    this.clearButton = clearButton;
    this.onOpen = onOpen;
    this.entries = [];
    this.storageFailed = false;
    this.clearButton.addEventListener("click", () => this.clear());
  }

  load(now = Date.now()) {
    this.entries = readEntries().filter((entry) => !isExpired(entry, now));
    writeEntries(this.entries);
    this.render();
  }

  save() {
    this.storageFailed = !writeEntries(this.entries);
    this.render();
  }

  record({ jobId, filename, operations }) {
    this.entries = this.entries.filter((entry) => entry.job_id !== jobId);
    this.entries.unshift({
      job_id: jobId,
      filename,
      operations,
      status: "QUEUED",
      created_at: new Date().toISOString(),
      expires_at: null,
    });
    this.entries = this.entries.slice(0, MAX_ENTRIES);
    this.save();
  }

  update(job) {
    const entry = this.entries.find((item) => item.job_id === job.job_id);
    if (!entry) return;
    const changed = entry.status !== job.status || entry.expires_at !== job.expires_at;
    entry.status = job.status;
    entry.expires_at = job.expires_at ?? entry.expires_at;
    entry.filename = job.source?.filename ?? entry.filename;
    if (changed) this.save();
  }

  remove(jobId) {
    this.entries = this.entries.filter((entry) => entry.job_id !== jobId);
    this.save();
  }

  clear() {
    this.entries = [];
    this.save();
  }

  find(jobId) {
    return this.entries.find((entry) => entry.job_id === jobId) ?? null;
  }

  render() {
    this.list.replaceChildren();
    for (const entry of this.entries) {
      const item = document.createElement("li");
      item.className = "history-item";
      item.dataset.jobId = entry.job_id;

      const button = document.createElement("button");
      button.type = "button";
      button.className = "link-button";
      button.textContent = entry.filename || entry.job_id;
      button.setAttribute("aria-label", `Show job for ${entry.filename || entry.job_id}`);
      button.addEventListener("click", () => this.onOpen(entry.job_id));

      const details = document.createElement("span");
      details.className = "hint";
      const parts = [
        formatStatus(entry.status),
        (entry.operations ?? []).map(operationLabel).join(", "),
        formatDateTime(entry.created_at),
      ];
      if (entry.expires_at) parts.push(formatExpiry(entry.expires_at));
      details.textContent = parts.filter(Boolean).join(" · ");

      item.append(button, details);
      this.list.append(item);
    }
    const empty = this.entries.length === 0;
    this.clearButton.hidden = empty;
    if (this.storageFailed) {
      this.emptyNote.textContent = "This browser does not allow saving the job list; it lasts until the page closes.";
    } else if (empty) {
      this.emptyNote.textContent = "No jobs yet. Jobs you submit from this browser appear here until they expire.";
    }
    this.emptyNote.hidden = !this.storageFailed && !empty;
  }
}
