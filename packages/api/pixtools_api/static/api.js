// HTTP helpers: JSON requests, the standard error body, and retries that are
// safe to repeat (GET, or POST with the same Idempotency-Key).

const API_KEY_STORAGE = "pixtools.apiKey";
const RETRY_STATUSES = new Set([429, 502, 503, 504]);
export const RETRY_DELAYS_MS = [1000, 2000, 4000];

export class ApiError extends Error {
  constructor(status, code, message, details = []) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export function readApiKey() {
  try {
    return sessionStorage.getItem(API_KEY_STORAGE) ?? "";
  } catch {
    return "";
  }
}

export function storeApiKey(value) {
  try {
    if (value) sessionStorage.setItem(API_KEY_STORAGE, value);
    else sessionStorage.removeItem(API_KEY_STORAGE);
  } catch {
    // Storage disabled: the key lasts until the page closes.
  }
}

export function authHeaders() {
  const key = readApiKey();
  return key ? { "X-API-Key": key } : {};
}

// Build an ApiError from a response with the {"error": {...}} body.
export async function errorFromResponse(response) {
  try {
    const body = await response.json();
    const error = body?.error;
    if (error && typeof error.message === "string") {
      return new ApiError(
        response.status,
        String(error.code ?? `http-${response.status}`),
        error.message,
        Array.isArray(error.details) ? error.details : [],
      );
    }
  } catch {
    // Not JSON: a proxy error page, for example.
  }
  const code = response.status === 503 ? "service-unavailable" : `http-${response.status}`;
  return new ApiError(response.status, code, `The server responded with HTTP ${response.status}.`);
}

function isRetryable(status) {
  return RETRY_STATUSES.has(status) || status >= 500;
}

function sleep(milliseconds) {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}

// fetch() with retries on network errors and 5xx. `onRetry(attempt, total)` is
// called before each new attempt. Throws ApiError for 4xx or after the last try.
export async function fetchWithRetry(url, init = {}, { onRetry, delays = RETRY_DELAYS_MS } = {}) {
  let lastError = null;
  for (let attempt = 0; attempt <= delays.length; attempt += 1) {
    if (attempt > 0) {
      onRetry?.(attempt, delays.length);
      await sleep(delays[attempt - 1]);
    }
    let response;
    try {
      response = await fetch(url, {
        ...init,
        headers: { ...authHeaders(), ...(init.headers ?? {}) },
      });
    } catch (error) {
      lastError = new ApiError(0, "network-error", `The request failed: ${error.message}.`);
      continue;
    }
    if (response.ok) return response;
    const apiError = await errorFromResponse(response);
    if (!isRetryable(response.status)) throw apiError;
    lastError = apiError;
  }
  throw lastError;
}

export async function getJson(url, options = {}) {
  const response = await fetchWithRetry(url, { headers: { Accept: "application/json" } }, options);
  return response.json();
}

export function jobUrl(jobId) {
  return `/api/jobs/${encodeURIComponent(jobId)}`;
}
