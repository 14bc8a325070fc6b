// Advice for each API error code: the next step for the user, shown under the
// error message.

const ADVICE = {
  "upload-too-large": "Choose a smaller file, or export the image at a lower resolution or quality first.",
  "image-too-large": "Scale the image down below the pixel and side limits shown above, then upload it again.",
  "unsupported-format": "Convert the file to JPEG, PNG, WebP, AVIF, GIF or TIFF, then upload it again.",
  "invalid-image": "The file is damaged or is not an image. Check that it opens in an image viewer.",
  "invalid-operations": "Check the selected operations and their settings.",
  "invalid-request": "Check the form fields named below.",
  "invalid-webhook-url": "Use an https:// URL on a host the service may call, or leave the webhook empty.",
  "form-field-too-large": "Shorten the webhook URL.",
  "idempotency-key-reused": "Submit the form again; each new submission gets a new key.",
  "idempotency-key-expired": "Submit the form again; each new submission gets a new key.",
  "job-not-found": "The job no longer exists: it expired or was deleted. Submit the image again.",
  "download-link-expired": "Open the job again from Recent jobs to get fresh download links.",
  "invalid-download-link": "Open the job again from Recent jobs to get fresh download links.",
  "file-not-found": "The result was deleted, probably because the job expired.",
  "request-too-large": "Choose a smaller file.",
  "network-error": "Check your connection and submit again. Retries reuse the same request key, so no duplicate job is created.",
  "internal-error": "The service failed. Wait a moment and try again.",
  "service-unavailable": "The service is busy or restarting. Wait a moment and try again.",
  "database-unavailable": "The service's database is not responding. Wait a moment and submit again; retries reuse the same request key, so no duplicate job is created.",
  "backlog-full": "The service has too much queued work right now. Wait a minute and try again.",
};

const STATUS_ADVICE = {
  401: "Enter a valid API key under Connection settings.",
  403: "Check the API key under Connection settings.",
  413: "Choose a smaller file.",
  429: "Too many requests. Wait a moment and try again.",
};

export function adviceFor(code, status) {
  return ADVICE[code] ?? STATUS_ADVICE[status] ?? (status >= 500 ? ADVICE["internal-error"] : "");
}

// Advice for an operation that failed inside a job (worker error codes).
const OPERATION_ADVICE = {
  "invalid-image": "The image could not be decoded. Try re-saving it with another program.",
  "image-too-large": "Scale the image down, then submit it again.",
  "denoise-timed-out": "The image is too large to denoise in time. Resize it first or denoise a smaller copy.",
  "operation-stalled": "The worker stopped responding. Submit the image again.",
};

export function operationAdvice(code) {
  return OPERATION_ADVICE[code] ?? "";
}
