// Entry module of the upload page: loads the limits, builds the form, submits
// jobs, follows them and keeps the list of recent jobs.
// Everything shown comes from the server or the user, so text is set with
// textContent only, never as HTML.

import { ApiError, fetchWithRetry, getJson } from "./api.js";
import { JobHistory } from "./history.js";
import { trackJob } from "./job-tracker.js";
import { JobView, renderError } from "./job-view.js";
import { UploadForm } from "./upload-form.js";

const originals = new Map();
let form = null;
let view = null;
let jobHistory = null;
let tracker = null;

function byId(id) {
  return document.getElementById(id);
}

function announce(message) {
  const announcer = byId("announcer");
  // Clearing first makes screen readers repeat an identical message.
  announcer.textContent = "";
  setTimeout(() => {
    announcer.textContent = message;
  }, 50);
}

function showFormError(error) {
  const box = byId("error");
  renderError(box, error);
  box.focus();
}

function clearFormError() {
  const box = byId("error");
  box.hidden = true;
  box.replaceChildren();
}

function setSubmitStatus(text) {
  byId("submit-status").textContent = text;
}

function openJob(jobId, { filename } = {}) {
  tracker?.stop();
  const entry = jobHistory.find(jobId);
  view.show(jobId, {
    filename: filename ?? entry?.filename,
    originalUrl: originals.get(jobId),
  });
  window.history.replaceState(null, "", `#job=${encodeURIComponent(jobId)}`);

  tracker = trackJob(jobId, {
    onJob(job) {
      view.update(job);
      jobHistory.update(job);
    },
    onEnd() {
      setSubmitStatus("");
    },
    onError(error) {
      view.showError(error);
      if (error.code === "job-not-found") jobHistory.remove(jobId);
    },
    onConnection(note) {
      view.setConnection(note);
    },
  });
}

function buildFormData(request) {
  const body = new FormData();
  body.append("file", request.file, request.file.name);
  body.append("operations", JSON.stringify(request.operations));
  if (Object.keys(request.params).length > 0) {
    body.append("operation_params", JSON.stringify(request.params));
  }
  if (request.webhookUrl) body.append("webhook_url", request.webhookUrl);
  return body;
}

async function submitJob(event) {
  event.preventDefault();
  clearFormError();

  const { problems, focus } = await form.validate();
  if (problems.length > 0) {
    renderError(byId("error"), { message: "The form has problems:", problems });
    focus?.focus();
    return;
  }

  const request = form.request();
  const body = buildFormData(request);
  // One key per submission: retries after a network error reuse it, so the
  // API returns the job it already created instead of a second one.
  const idempotencyKey = crypto.randomUUID();

  const button = byId("submit");
  button.disabled = true;
  setSubmitStatus(`Uploading ${request.file.name}…`);
  try {
    const response = await fetchWithRetry(
      "/api/process",
      { method: "POST", body, headers: { "Idempotency-Key": idempotencyKey } },
      {
        onRetry(attempt, total) {
          setSubmitStatus(`Connection problem; retrying (${attempt} of ${total}) with the same request key…`);
        },
      },
    );
    const accepted = await response.json();
    setSubmitStatus("Submitted.");
    originals.set(accepted.job_id, form.takePreviewUrl());
    jobHistory.record({
      jobId: accepted.job_id,
      filename: request.file.name,
      operations: request.operations,
    });
    openJob(accepted.job_id, { filename: request.file.name });
  } catch (error) {
    setSubmitStatus("");
    showFormError(error instanceof ApiError ? error : { message: String(error) });
  } finally {
    button.disabled = false;
  }
}

function jobIdFromHash() {
  const match = /^#job=(.+)$/.exec(window.location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

async function start() {
  jobHistory = new JobHistory(byId("history-list"), byId("history-empty"), byId("history-clear"), {
    onOpen: (jobId) => openJob(jobId),
  });
  jobHistory.load();
  view = new JobView(announce);

  let limits;
  try {
    limits = await getJson("/api/limits");
  } catch (error) {
    byId("limits").textContent = "";
    showFormError(error instanceof ApiError ? error : { message: String(error) });
    return;
  }
  form = new UploadForm(limits);
  byId("process-form").addEventListener("submit", submitJob);
  byId("submit").disabled = false;

  const jobId = jobIdFromHash();
  if (jobId) openJob(jobId);
}

start();
