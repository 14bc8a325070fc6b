// Follows one job: server-sent events from /api/jobs/{id}/events, or polling
// GET /api/jobs/{id} when EventSource is missing, fails to connect, or
// cannot send the API key (EventSource sends no custom headers).

import { ApiError, getJson, jobUrl, readApiKey } from "./api.js";

export const FINAL_STATUSES = new Set(["COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "EXPIRED"]);
const POLL_INTERVAL_MS = 1000;
const MAX_POLL_BACKOFF_MS = 15000;
// Stream errors in a row, without a job event between them, before polling.
const MAX_STREAM_FAILURES = 3;

export function trackJob(jobId, { onJob, onEnd, onError, onConnection }) {
  let stopped = false;
  let source = null;
  let timer = null;
  let streamFailures = 0;
  let pollFailures = 0;
  let lastJob = null;

  function finish(job) {
    stopped = true;
    source?.close();
    onConnection?.(null);
    onEnd?.(job);
  }

  function receive(job) {
    lastJob = job;
    onJob(job);
    if (FINAL_STATUSES.has(job.status)) finish(job);
  }

  async function poll() {
    if (stopped) return;
    try {
      const job = await getJson(jobUrl(jobId), { delays: [] });
      pollFailures = 0;
      onConnection?.(null);
      receive(job);
    } catch (error) {
      if (error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 429) {
        stopped = true;
        onError?.(error);
        return;
      }
      pollFailures += 1;
      onConnection?.("Connection problem; checking the job again shortly.");
    }
    if (!stopped) {
      const delay = Math.min(POLL_INTERVAL_MS * 2 ** pollFailures, MAX_POLL_BACKOFF_MS);
      timer = setTimeout(poll, delay);
    }
  }

  function startPolling() {
    source?.close();
    source = null;
    if (!stopped) poll();
  }

  function startStream() {
    source = new EventSource(`${jobUrl(jobId)}/events`);
    source.addEventListener("job", (event) => {
      streamFailures = 0;
      onConnection?.(null);
      receive(JSON.parse(event.data));
    });
    source.addEventListener("end", (event) => {
      const data = JSON.parse(event.data);
      if (data.error) {
        stopped = true;
        source.close();
        onError?.(new ApiError(404, data.error.code, data.error.message));
      } else if (!stopped) {
        // The last job event already carried the final state.
        finish(lastJob);
      }
    });
    source.onerror = () => {
      if (stopped) return;
      streamFailures += 1;
      // CLOSED means the server responded with an error status (404, 503).
      // The browser does not reconnect on its own, so poll instead.
      if (source.readyState === EventSource.CLOSED || streamFailures >= MAX_STREAM_FAILURES) {
        startPolling();
      } else {
        onConnection?.("Live updates interrupted; reconnecting.");
      }
    };
  }

  if (typeof EventSource === "function" && !readApiKey()) startStream();
  else poll();

  return {
    stop() {
      stopped = true;
      source?.close();
      clearTimeout(timer);
    },
    usesStream() {
      return source !== null;
    },
  };
}
