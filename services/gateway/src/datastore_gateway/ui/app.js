// The page: log in, "My requests" polled every few seconds, one request's datasets, jobs and
// files, archive a request body typed or loaded from a file, restore a dataset after a size
// preview, cancel and retry where the gateway allows;
// for admins, the operators' view (queues, failures, active jobs).
// It talks to the gateway's JSON routes only (docs/openapi.json) with the ICAT session as
// bearer, kept in sessionStorage (gone when the tab closes). Text goes in with textContent.
(function () {
  "use strict";
  const L = window.DatastoreLogic;
  const SESSION = "datastore.session";
  const OPERATOR = "datastore.operator";
  const POLL_MS = 3000;
  const $ = (id) => document.getElementById(id);

  function say(text, isError) {
    $("message").textContent = text;
    $("message").className = isError ? "error" : "";
  }

  class SessionExpired extends Error {}

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${sessionStorage.getItem(SESSION) || ""}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const answer = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const parsed = await answer.json().catch(() => null);
    if (answer.status === 401) {
      sessionStorage.removeItem(SESSION);
      throw new SessionExpired(L.reasonOf(401, parsed));
    }
    if (!answer.ok) throw new Error(L.reasonOf(answer.status, parsed));
    return parsed;
  }

  function cell(row, text, className) {
    const td = row.insertCell();
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function button(label, onClick, secondary) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    if (secondary) b.className = "secondary";
    b.addEventListener("click", () => act(onClick));
    return b;
  }

  async function act(action) {
    try {
      await action();
    } catch (error) {
      failed(error);
    }
  }

  function failed(error) {
    if (error instanceof SessionExpired) {
      location.hash = "#/login";
      say(`Your session expired or is not valid (${error.message}): log in again.`, true);
    } else {
      say(error.message, true);
    }
  }

  function progressCell(row, request) {
    const p = L.progressOf(request);
    const td = row.insertCell();
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = p.percent;
    bar.setAttribute("aria-label", `${p.percent}% of files ended`);
    td.append(bar, ` ${p.done + p.failed}/${p.total} files, ${L.formatBytes(p.bytesDone)} / ${L.formatBytes(p.bytesTotal)}`);
  }

  // -- views --------------------------------------------------------------------------------
  async function showRequests() {
    const page = await api("GET", "/requests?limit=50");
    const rows = $("requests-rows");
    rows.replaceChildren();
    for (const request of page.items) {
      const row = rows.insertRow();
      const link = document.createElement("a");
      link.href = `#/requests/${encodeURIComponent(request.request_id)}`;
      link.textContent = request.request_id;
      row.insertCell().append(link);
      row.cells[0].className = "id";
      cell(row, request.kind);
      cell(row, request.state, `state-${request.state}`);
      progressCell(row, request);
      cell(row, L.explain(request));
      const actions = row.insertCell();
      if (L.canCancel(request)) actions.append(button("Cancel", () => cancel(request.request_id), true));
    }
    if (!page.items.length) cell(rows.insertRow(), "No requests yet.");
  }

  async function showRequest(requestId) {
    const request = await api("GET", `/requests/${encodeURIComponent(requestId)}`);
    $("request-title").textContent = `${request.kind} ${request.request_id}`;
    const p = L.progressOf(request);
    $("request-summary").textContent =
      `${request.state}: ${p.done} of ${p.total} files done, ${p.failed} failed, ` +
      `${L.formatBytes(p.bytesDone)} of ${L.formatBytes(p.bytesTotal)}. ${L.explain(request)}`;
    $("request-cancel").hidden = !L.canCancel(request);
    $("request-cancel").onclick = () => act(() => cancel(request.request_id));
    const datasets = $("request-datasets");
    datasets.replaceChildren();
    for (const d of request.datasets) {
      const row = datasets.insertRow();
      cell(row, `${d.investigation}-${d.visit_id}`);
      cell(row, d.dataset);
      cell(row, String(d.datafiles));
      const actions = row.insertCell();
      // The ledger names the datasets, not their states: the request's own state says
      // whether some of its files ended badly (the gateway answers 409 for one that did not).
      if (L.canRetry(request.kind, request.state)) {
        actions.append(button("Retry its failed files", () => retry(d), true));
      }
    }
    const jobs = $("request-jobs");
    jobs.replaceChildren();
    for (const job of request.jobs) {
      const heading = document.createElement("h4");
      heading.textContent = `Job ${job.job_id}: ${job.state}, ${job.files_done + job.files_failed}/${job.files_total} files ended`;
      jobs.append(heading, await jobFiles(job.job_id));
    }
  }

  async function jobFiles(jobId) {
    const table = document.createElement("table");
    try {
      const job = await api("GET", `/job/${encodeURIComponent(jobId)}`);
      const head = table.createTHead().insertRow();
      for (const title of ["File", "State", "Reason"]) {
        const th = document.createElement("th");
        th.scope = "col";
        th.textContent = title;
        head.append(th);
      }
      const body = table.createTBody();
      for (const file of job.files) {
        const row = body.insertRow();
        cell(row, file.destination, "id");
        cell(row, file.state, `state-${file.state}`);
        cell(row, file.reason || "");
      }
    } catch (error) {
      if (error instanceof SessionExpired) throw error;
      cell(table.insertRow(), `Files not available from FTS: ${error.message}`);
    }
    return table;
  }

  async function cancel(requestId) {
    const answer = await api("DELETE", `/requests/${encodeURIComponent(requestId)}`);
    say(`Canceling request ${answer.request_id}: ${answer.canceled_job_ids.length} jobs.`);
    await refresh();
  }

  async function retry(dataset) {
    const investigation = `${dataset.investigation}-${dataset.visit_id}`;
    const found = await api("GET", `/datasets?investigation=${encodeURIComponent(investigation)}&name=${encodeURIComponent(dataset.dataset)}`);
    if (!found.items.length) throw new Error(`no dataset ${dataset.dataset} in ${investigation} that you may read`);
    const answer = await api("POST", `/datasets/${found.items[0].id}/retry`);
    location.hash = `#/requests/${encodeURIComponent(answer.request_id)}`;
    say(`Retrying ${answer.datafile_ids.length} datafiles: request ${answer.request_id}.`);
  }

  async function findDatasets(text) {
    const parts = L.splitInvestigation(text);
    if (!parts) throw new Error("give the investigation as name-visit, e.g. ABC123-1");
    const found = await api("GET", `/datasets?investigation=${encodeURIComponent(text.trim())}&limit=500`);
    const rows = $("restore-rows");
    rows.replaceChildren();
    for (const dataset of found.items) {
      const row = rows.insertRow();
      cell(row, `${dataset.name} (id ${dataset.id})`);
      cell(row, dataset.state || "not archived", `state-${dataset.state}`);
      const size = cell(row, "");
      const actions = row.insertCell();
      if (dataset.state === "FINISHED") {
        actions.append(button("Preview size", () => preview(dataset.id, size), true));
        actions.append(button("Restore", () => restore(dataset.id)));
      }
    }
    if (!found.items.length) cell(rows.insertRow(), `No dataset in ${text} that you may read.`);
  }

  async function preview(datasetId, into) {
    const status = await api("GET", `/datasets/${datasetId}/status?list_files=false`);
    into.textContent = `${status.files_total} files`;
  }

  async function restore(datasetId) {
    const answer = await api("POST", "/restore", { dataset_ids: [datasetId] });
    location.hash = `#/requests/${encodeURIComponent(answer.request_id)}`;
    say(`Restore accepted: request ${answer.request_id}.`);
  }

  async function archive(text) {
    const parsed = L.parseArchiveBody(text);
    if (parsed.error) throw new Error(parsed.error);
    const answer = await api("POST", "/archive", parsed.body);
    location.hash = `#/requests/${encodeURIComponent(answer.request_id)}`;
    say(`Archive accepted: request ${answer.request_id} (${parsed.summary}).`);
  }

  async function showOperations() {
    const view = await api("GET", "/operations");
    const oldest = view.oldest_active;
    $("operations-summary").textContent =
      `${view.active_requests} requests and ${view.active_jobs_total} FTS jobs going. ` +
      (oldest
        ? `Oldest waiting: ${oldest.kind} ${oldest.request_id} (${oldest.state}), accepted ` +
          `${L.formatAge(oldest.age_seconds)} ago, last moved ${L.formatAge(oldest.idle_seconds)} ago.`
        : "Nothing is waiting.");
    $("operations-broker").textContent = view.broker ? `Queues not counted: ${view.broker}` : "";
    const queues = $("operations-queues");
    queues.replaceChildren();
    for (const q of view.queues) {
      const row = queues.insertRow();
      cell(row, q.queue, "id");
      cell(row, q.consumed_by || "(delay queue)");
      cell(row, L.countOf(q.ready));
      cell(row, L.countOf(q.consumers));
      cell(row, L.countOf(q.retrying));
      cell(row, L.countOf(q.dead_letters), q.dead_letters ? "state-FAILED" : "");
    }
    const failures = $("operations-failures");
    failures.replaceChildren();
    for (const f of view.failures) {
      const row = failures.insertRow();
      cell(row, f.class);
      cell(row, f.state, `state-${f.state}`);
      cell(row, String(f.requests));
    }
    if (!view.failures.length) cell(failures.insertRow(), "No failures.");
    const recent = $("operations-recent");
    recent.replaceChildren();
    for (const f of view.recent_failures) {
      const row = recent.insertRow();
      const link = document.createElement("a");
      link.href = `#/requests/${encodeURIComponent(f.request_id)}`;
      link.textContent = `${f.kind} ${f.request_id}`;
      row.insertCell().append(link);
      row.cells[0].className = "id";
      cell(row, f.owner || "");
      cell(row, f.state, `state-${f.state}`);
      cell(row, f.reason ? `${f.class} error: ${f.reason}` : `${f.class}: files failed`);
      cell(row, new Date(f.ended_at).toLocaleString());
    }
    const jobs = $("operations-jobs");
    jobs.replaceChildren();
    for (const j of view.active_jobs) {
      const row = jobs.insertRow();
      cell(row, j.job_id, "id");
      cell(row, `${j.kind} ${j.request_id}`, "id");
      cell(row, j.owner || "");
      cell(row, j.state);
      cell(row, `${j.files_ended}/${j.files_total}`);
    }
    if (!view.active_jobs.length) cell(jobs.insertRow(), "No FTS job is going.");
  }

  // Whether this session is an operator's: the gateway answers /operations to admins only.
  async function checkOperator() {
    let operator = "no";
    try {
      await api("GET", "/operations");
      operator = "yes";
    } catch (error) {
      if (error instanceof SessionExpired) throw error;
    }
    sessionStorage.setItem(OPERATOR, operator);
  }

  // -- routing and polling -------------------------------------------------------------------
  const VIEWS = ["login-view", "requests-view", "request-view", "archive-view", "restore-view", "operations-view"];

  function show(view) {
    for (const id of VIEWS) $(id).hidden = id !== view;
    // A link or button followed out of a view keeps the focus while hidden: let it go, or
    // the refresh (paused under a focus inside a table) would never resume.
    if (document.activeElement?.closest("[hidden]")) document.activeElement.blur();
    $("nav").hidden = view === "login-view";
    $("operations-link").hidden = sessionStorage.getItem(OPERATOR) !== "yes";
  }

  async function refresh() {
    const route = location.hash.replace(/^#\/?/, "");
    if (!sessionStorage.getItem(SESSION) || route === "login") return show("login-view");
    if (route.startsWith("requests/")) {
      show("request-view");
      return showRequest(decodeURIComponent(route.slice("requests/".length)));
    }
    if (route === "archive") return show("archive-view");
    if (route === "restore") return show("restore-view");
    if (route === "operations") {
      show("operations-view");
      return showOperations();
    }
    show("requests-view");
    return showRequests();
  }

  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act(async () => {
      const answer = await api("POST", "/login", {
        auth: $("auth").value, username: $("username").value, password: $("password").value,
      });
      sessionStorage.setItem(SESSION, answer.sessionId);
      $("password").value = "";
      await checkOperator();
      say(`Logged in as ${$("auth").value}/${$("username").value}.`);
      location.hash = "#/requests";
      await refresh();
    });
  });
  $("archive-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act(() => archive($("archive-body").value));
  });
  // A file chosen is read into the text area, where it can be checked and edited before sending.
  $("archive-file").addEventListener("change", () => {
    const [file] = $("archive-file").files;
    if (file) act(async () => {
      $("archive-body").value = await file.text();
      say(`Loaded ${file.name}: check it and press Archive.`);
    });
  });
  $("restore-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act(() => findDatasets($("investigation").value));
  });
  $("logout").addEventListener("click", () => {
    sessionStorage.removeItem(SESSION);
    sessionStorage.removeItem(OPERATOR);
    location.hash = "#/login";
  });
  window.addEventListener("hashchange", () => act(refresh));
  setInterval(() => {
    // Not while the tab is hidden, nor under a keyboard user's focus inside a table.
    if (document.hidden || document.activeElement?.closest("table")) return;
    act(refresh);
  }, POLL_MS);
  act(refresh);
})();
