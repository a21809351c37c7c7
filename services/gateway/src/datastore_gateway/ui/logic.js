// The page's decisions, without the DOM: what a request's progress is, what it may be asked
// to do, how to read what a person typed. Loaded by the page (window.DatastoreLogic) and by
// tests/unit/gateway/test_ui.py under node (module.exports), so it is checked without a browser.
(function (exports) {
  "use strict";

  // The states a request ends in (GET /requests/{id} `state`); it never moves on from them.
  const ENDED = ["FINISHED", "FINISHEDDIRTY", "FAILED", "CANCELED"];
  // A dataset whose archive ended so may have its FAILED or CANCELED files sent again.
  const RETRYABLE = ["FAILED", "FINISHEDDIRTY", "CANCELED"];

  function isEnded(state) {
    return ENDED.includes(state);
  }

  // Files and bytes over all of a request's jobs; `percent` counts files that ended.
  function progressOf(request) {
    const sum = (key) => request.jobs.reduce((total, job) => total + job[key], 0);
    const done = sum("files_done");
    const failed = sum("files_failed");
    const total = sum("files_total");
    const percent = total === 0 ? (isEnded(request.state) ? 100 : 0) : Math.round((100 * (done + failed)) / total);
    return { done, failed, total, bytesDone: sum("bytes_done"), bytesTotal: sum("bytes_total"), percent };
  }

  // One line saying why it failed, or what it waits on now; "" once it ended well.
  function explain(request) {
    if (request.failure) {
      return `${request.failure.class} error: ${request.failure.reason}`;
    }
    return request.waiting_on ? `waiting on ${request.waiting_on}` : "";
  }

  // The gateway refuses to cancel an archive (its files may be on tape) unless an admin
  // forces it through the API: the page offers cancel for restores still going only.
  function canCancel(request) {
    return request.kind === "restore" && !isEnded(request.state);
  }

  function canRetry(kind, datasetState) {
    return kind === "archive" && RETRYABLE.includes(datasetState);
  }

  // "ABC123-1" -> {name: "ABC123", visitId: "1"}: split at the last "-", as the gateway does.
  function splitInvestigation(text) {
    const given = text.trim();
    const at = given.lastIndexOf("-");
    if (at <= 0 || at === given.length - 1) {
      return null;
    }
    return { name: given.slice(0, at), visitId: given.slice(at + 1) };
  }

  function formatBytes(count) {
    const units = ["B", "kB", "MB", "GB", "TB"];
    let amount = count;
    let unit = 0;
    while (amount >= 1000 && unit < units.length - 1) {
      amount /= 1000;
      unit += 1;
    }
    return unit === 0 ? `${count} B` : `${amount.toFixed(1)} ${units[unit]}`;
  }

  // The reason of a refused answer's body ({"detail": "..."} or a 422's {"reason": "..."}).
  function reasonOf(status, body) {
    if (body && typeof body.reason === "string") return body.reason;
    if (body && typeof body.detail === "string") return body.detail;
    return `HTTP ${status}`;
  }

  // "3 h 5 min" for a number of seconds: how long a request has waited, at a glance.
  function formatAge(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    const minutes = Math.floor(s / 60);
    if (minutes < 60) return `${minutes} min`;
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return `${hours} h ${minutes % 60} min`;
    return `${Math.floor(hours / 24)} d ${hours % 24} h`;
  }

  // A queue's count for a table cell: "-" when the queue is not declared on the broker.
  function countOf(value) {
    return value === null || value === undefined ? "-" : String(value);
  }

  // What a person typed (or loaded from a file) as a POST /archive body: {body, summary}, or
  // {error} saying what is wrong before anything is sent (the gateway checks the rest).
  function parseArchiveBody(text) {
    let body;
    try {
      body = JSON.parse(text);
    } catch (error) {
      return { error: `the archive request is not JSON: ${error.message}` };
    }
    const investigations = body && !Array.isArray(body) && typeof body === "object" ? body.investigations : undefined;
    if (!Array.isArray(investigations) || investigations.length === 0) {
      return { error: 'the archive request needs "investigations": a list of at least one investigation' };
    }
    const datasets = investigations.flatMap((i) => (i && Array.isArray(i.datasets) ? i.datasets : []));
    const datafiles = datasets.reduce((total, d) => total + (d && Array.isArray(d.datafiles) ? d.datafiles.length : 0), 0);
    const plural = (count, word) => `${count} ${word}${count === 1 ? "" : "s"}`;
    return {
      body,
      summary: `${plural(investigations.length, "investigation")}, ${plural(datasets.length, "dataset")}, ${plural(datafiles, "datafile")}`,
    };
  }

  Object.assign(exports, {
    parseArchiveBody,
    ENDED,
    isEnded,
    progressOf,
    explain,
    canCancel,
    canRetry,
    splitInvestigation,
    formatBytes,
    formatAge,
    countOf,
    reasonOf,
  });
})(typeof module !== "undefined" ? module.exports : (window.DatastoreLogic = {}));
