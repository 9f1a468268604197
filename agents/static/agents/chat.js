// The chat page: sends messages to the streaming run endpoint and renders its events; joins a
// run's stream again after a reload or a lost connection (see "Streaming an answer"); asks for
// a decision when a run waits for approval, and streams its continuation (see "Approvals").
//
// Answers are Markdown. Model output never becomes markup of its own: marked escapes any raw
// HTML in it (the `html` renderer below) and turns images into links, and DOMPurify, on an
// allow-list of tags and attributes, sanitizes what marked produced as a second guard. Everything
// else the model sends (plan, tool arguments, summaries, errors) is inserted with textContent.
(function () {
  "use strict";

  const root = document.getElementById("chat");
  if (!root) return;
  const streamUrl = root.dataset.streamUrl;
  const threadsUrl = root.dataset.threadsUrl.replace(/\/?$/, "/");
  const runsUrl = root.dataset.runsUrl.replace(/\/?$/, "/");
  const csrf = root.querySelector("input[name=csrfmiddlewaretoken]").value;
  const messages = document.getElementById("messages");
  const form = document.getElementById("composer");
  const input = document.getElementById("message");
  const send = document.getElementById("send");
  const stop = document.getElementById("stop");
  const composerHint = document.getElementById("composer-hint");
  const threads = document.getElementById("threads");
  const title = document.getElementById("conversation-title");
  const menuToggle = document.getElementById("menu-toggle");
  let threadId = root.dataset.threadId || null;

  // --- Markdown -------------------------------------------------------------------------------

  function escapeHtml(text) {
    return String(text)
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;")
      .replace(/'/g, "&#39;");
  }

  const ALLOWED_TAGS = [
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "li", "ol", "p", "pre", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
  ];
  const PURIFY = {
    ALLOWED_TAGS,
    ALLOWED_ATTR: ["href", "title", "align", "start"],
    ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i,
    ALLOW_DATA_ATTR: false,
    RETURN_DOM_FRAGMENT: true,
  };
  let markdown = null;
  if (window.marked && window.DOMPurify) {
    markdown = new window.marked.Marked({
      gfm: true,
      breaks: true,
      renderer: {
        // Raw HTML in an answer is shown as the text it is.
        html(token) {
          const text = escapeHtml(token.text);
          return token.block ? `<p>${text}</p>` : text;
        },
        // No remote content: an image is a link to it, never a request from this page.
        image(token) {
          const label = escapeHtml(token.text || token.href);
          return /^https?:/i.test(token.href || "")
            ? `<a href="${escapeHtml(token.href)}">${label}</a>`
            : label;
        },
      },
    });
    window.DOMPurify.addHook("afterSanitizeAttributes", (node) => {
      if (node.tagName === "A" && node.hasAttribute("href")) {
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer");
      }
    });
  }

  function copyButton(pre) {
    const button = el("button", "copy", "Copy");
    button.type = "button";
    button.setAttribute("aria-label", "Copy the code");
    button.addEventListener("click", async () => {
      const code = pre.textContent;
      try {
        await navigator.clipboard.writeText(code);
        button.textContent = "Copied";
      } catch (e) {
        button.textContent = "Copy failed";
      }
      setTimeout(() => (button.textContent = "Copy"), 1500);
    });
    return button;
  }

  function renderMarkdown(target, text) {
    if (!markdown) {
      target.textContent = text;
      return;
    }
    const fragment = window.DOMPurify.sanitize(markdown.parse(text), PURIFY);
    for (const node of [...fragment.childNodes]) {
      if (node.nodeType === Node.TEXT_NODE && !node.textContent.trim()) node.remove();
    }
    fragment.querySelectorAll("pre").forEach((pre) => {
      const wrap = el("div", "code-block");
      pre.replaceWith(wrap);
      wrap.append(pre, copyButton(pre));
    });
    fragment.querySelectorAll("table").forEach((table) => {
      const wrap = el("div", "table-wrap");
      table.replaceWith(wrap);
      wrap.appendChild(table);
    });
    target.replaceChildren(fragment);
  }

  // --- Layout: drawer and viewport -----------------------------------------------------------

  function setDrawer(open) {
    const wasOpen = root.classList.contains("drawer-open");
    root.classList.toggle("drawer-open", open);
    menuToggle.setAttribute("aria-expanded", String(open));
    document.getElementById("backdrop").hidden = !open;
    // Keyboard users land in the list, and back on the button when it closes.
    if (open) document.getElementById("new-chat").focus();
    else if (wasOpen) menuToggle.focus();
  }
  menuToggle.addEventListener("click", () => setDrawer(!root.classList.contains("drawer-open")));
  document.getElementById("drawer-close").addEventListener("click", () => setDrawer(false));
  document.getElementById("backdrop").addEventListener("click", () => setDrawer(false));

  // On phones the on-screen keyboard shrinks the visual viewport, not the layout one: size the
  // page to what is visible so that the message box stays above the keyboard.
  function fitViewport() {
    const vv = window.visualViewport;
    if (!vv) return;
    document.documentElement.style.setProperty("--app-height", `${Math.round(vv.height)}px`);
    if (vv.offsetTop) window.scrollTo(0, 0);
  }
  if (window.visualViewport) {
    window.visualViewport.addEventListener("resize", fitViewport);
    window.visualViewport.addEventListener("scroll", fitViewport);
    fitViewport();
  }

  // --- Messages ------------------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function scrollDown() {
    messages.scrollTop = messages.scrollHeight;
  }

  function addUserMessage(text) {
    const hint = document.getElementById("hint");
    if (hint) hint.remove();
    const msg = el("div", "msg user");
    msg.appendChild(el("div", "body", text));
    messages.appendChild(msg);
    scrollDown();
    return msg;
  }

  // A new answer's bubble, at the end (or right after ``after``: an approval's continuation).
  function addAssistantMessage(after) {
    const msg = el("div", "msg assistant streaming");
    const plan = el("details", "plan");
    plan.hidden = true;
    plan.appendChild(el("summary", null, "Plan"));
    plan.appendChild(el("pre", "plan-body"));
    const tools = el("details", "tools");
    tools.hidden = true;
    tools.append(el("summary", null, "Tool calls"), el("ul"));
    const error = el("div", "error");
    error.hidden = true;
    error.setAttribute("role", "alert");
    msg.append(plan, tools, el("div", "body markdown"), error, el("div", "meta"));
    if (after) after.after(msg);
    else messages.appendChild(msg);
    scrollDown();
    return viewOf(msg);
  }

  // The question an answer's bubble answers: the user's message above it (above the turns
  // that continue it after an approval, too).
  function questionOf(msg) {
    let node = msg.previousElementSibling;
    while (node && !(node.classList.contains("msg") && node.classList.contains("user"))) {
      node = node.previousElementSibling;
    }
    return node ? node.querySelector(".body").textContent : "";
  }

  // The parts of an answer's bubble, made above or by the page's template (the same markup).
  function viewOf(msg) {
    return {
      msg,
      plan: msg.querySelector("details.plan"),
      planBody: msg.querySelector(".plan-body"),
      tools: msg.querySelector("details.tools"),
      toolsSummary: msg.querySelector("details.tools > summary"),
      toolList: msg.querySelector("details.tools ul"),
      body: msg.querySelector(".body"),
      meta: msg.querySelector(".meta"),
      error: msg.querySelector(".error"),
      pending: [],
      text: "",
      frame: 0,
    };
  }

  // Re-render the growing answer at most once a frame.
  function scheduleRender(view) {
    if (view.frame) return;
    view.frame = requestAnimationFrame(() => {
      view.frame = 0;
      renderMarkdown(view.body, view.text);
      scrollDown();
    });
  }

  function showError(view, text, retry) {
    view.error.replaceChildren(document.createTextNode(text));
    if (retry) {
      const button = el("button", "retry", "Retry");
      button.type = "button";
      button.addEventListener("click", retry);
      view.error.appendChild(button);
    }
    view.error.hidden = false;
    view.msg.classList.add("failed");
    scrollDown();
  }

  function showMeta(view, data) {
    const parts = [data.model];
    if (data.latency_ms != null) parts.push(`${(data.latency_ms / 1000).toFixed(1)} s`);
    if (data.usage && data.usage.total_tokens != null) parts.push(`${data.usage.total_tokens} tokens`);
    view.meta.textContent = parts.join(" · ");
    if (data.trace_url) {
      const link = el("a", "trace", "View trace");
      link.href = data.trace_url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      view.meta.append(" · ", link);
    }
  }

  // One event of the run's stream, as it arrives. Returns true for the last one.
  function handle(answer, event, data) {
    const view = answer.view;
    switch (event) {
      case "run":
        answer.runId = data.run_id;
        rememberThread(data.thread_id, answer.question);
        if (answer.stopping) cancelRun(answer); // Stop was pressed before the run had an id
        break;
      case "plan":
        view.planBody.textContent = data.plan || "";
        view.plan.hidden = !data.plan;
        break;
      case "tool_call":
        addToolCall(view, data.name, JSON.stringify(data.args));
        break;
      case "tool_result": {
        const index = view.pending.findIndex((p) => p.name === data.name);
        if (index >= 0) {
          const [entry] = view.pending.splice(index, 1);
          entry.outcome.textContent = ` → ${data.ok ? "ok" : "failed"}: ${data.summary}`;
          entry.outcome.className = data.ok ? "outcome ok" : "outcome failed";
        }
        break;
      }
      case "token":
        view.text += data.text;
        scheduleRender(view);
        break;
      case "done":
        view.text = data.response;
        cancelAnimationFrame(view.frame);
        view.frame = 0;
        renderMarkdown(view.body, view.text);
        settlePending(view, "not run");
        showMeta(view, data);
        view.msg.classList.remove("streaming");
        scrollDown();
        return true;
      case "error":
        // Cancelled: by Stop, here or in another tab, by the admin, or by a newer run.
        if (data.code === "cancelled") answer.stopped = true;
        else answer.failure = data.detail || "The agent failed to answer.";
        return true;
      case "interrupt":
        // The run waits for a decision on these calls: the card comes when the stream ends.
        answer.interrupt = data;
        cancelAnimationFrame(view.frame);
        view.frame = 0;
        if (view.text) renderMarkdown(view.body, view.text);
        settlePending(view, "paused for approval");
        return true;
    }
    return false;
  }

  // A tool call in the answer's folded list, its outcome to come ("…").
  function addToolCall(view, name, argsText) {
    const li = el("li");
    li.appendChild(el("code", null, name));
    li.appendChild(document.createTextNode(" "));
    li.appendChild(el("span", "args", argsText));
    const outcome = el("span", "outcome", " …");
    li.appendChild(outcome);
    view.toolList.appendChild(li);
    view.pending.push({ name, outcome });
    view.tools.hidden = false;
    view.toolsSummary.textContent = `Tool calls (${view.toolList.children.length})`;
  }

  // The calls that got no result when the run ended, labelled as a reload labels them.
  function settlePending(view, label) {
    for (const entry of view.pending) {
      entry.outcome.textContent = ` → ${label}`;
      entry.outcome.className = `outcome ${label.replace(/ /g, "-")}`;
    }
    view.pending = [];
  }

  async function jsonOf(response) {
    try {
      return (await response.json()) || {};
    } catch (e) {
      return {}; // not JSON
    }
  }

  // The messages of a validation error's field, however DRF nested them.
  function messagesOf(value) {
    if (value == null) return [];
    if (typeof value !== "object") return [String(value)];
    return Object.values(value).flatMap(messagesOf);
  }

  // What to tell the person about a refused request (``body``: its JSON, when already read).
  async function errorText(response, body) {
    if (body === undefined) body = await jsonOf(response);
    if (response.status === 429) {
      const wait = response.headers.get("Retry-After");
      return `You're sending messages too fast. Try again${wait ? ` in ${wait} seconds` : " shortly"}.`;
    }
    if (response.status === 401 || response.status === 403) {
      return "Your session has expired. Reload the page and log in again.";
    }
    if (body.code === "thread_interrupted") {
      return (
        "The agent is waiting for a decision on a call in this conversation. " +
        "Reload the page to see it, then approve or reject it before sending a new message."
      );
    }
    if (body.errors) {
      const field = body.errors.message || body.errors.args || body.errors.tool_call_id;
      const problems = messagesOf(field || body.errors);
      if (problems.length) return problems.join(" ");
    }
    return body.detail || `The request failed (${response.status}).`;
  }

  function markStopped(view) {
    cancelAnimationFrame(view.frame);
    view.frame = 0;
    if (view.text) renderMarkdown(view.body, view.text);
    view.msg.classList.add("stopped");
    view.msg.insertBefore(el("div", "stopped-note", "Stopped."), view.error);
  }

  // --- Streaming an answer -------------------------------------------------------------------
  //
  // The page streams with on_disconnect=continue: the run goes on when the connection drops or
  // the page reloads, and the page joins it again (GET runs/{id}/stream). Stop therefore cancels
  // the run explicitly (POST runs/{id}/cancel). Which run is in progress is the server's to say
  // (the template marks it), so nothing is kept in browser storage: a reloaded page has a fresh
  // DOM and joins from the first event, which fills the bubble exactly as the live stream did; a
  // connection lost under the same page resumes after the last event it read (Last-Event-ID).

  const RETRY_DELAYS_MS = [500, 1000, 2000, 4000, 8000];
  const CANCEL_GRACE_MS = 5000; // after an accepted cancel, how long to wait for its last event
  const UNREACHABLE = "Could not reach the server. Check your connection and try again.";
  const LOST = "Lost the connection to the server. Reload the page to see the rest of the answer.";
  let current = null; // the answer being streamed
  let leaving = false; // the page is being unloaded: its requests end, the run goes on
  window.addEventListener("pagehide", () => (leaving = true));
  window.addEventListener("pageshow", () => (leaving = false));

  function newAnswer(view, question, runId) {
    return {
      view,
      question,
      runId: runId || null,
      lastEventId: null, // the id of the last event read, for Last-Event-ID
      controller: new AbortController(),
      stopping: false, // Stop was pressed
      stopped: false, // the run ended cancelled
      failure: null, // what went wrong, for the person
      graceTimer: 0,
      interrupt: null, // the calls the run waits to have approved, when it paused
    };
  }

  function joinRequest(answer) {
    return (signal) => {
      const headers = { Accept: "text/event-stream" };
      if (answer.lastEventId) headers["Last-Event-ID"] = answer.lastEventId;
      const url = `${runsUrl}${answer.runId}/stream`;
      return fetch(url, { credentials: "same-origin", headers, signal });
    };
  }

  function pause(ms, signal) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(true), ms);
      const cut = () => {
        clearTimeout(timer);
        resolve(false);
      };
      signal.addEventListener("abort", cut, { once: true });
    });
  }

  // Read SSE blocks off the response until the run's last event or the end of the body.
  // Returns whether the last event came, and whether any event did.
  async function readStream(response, answer) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let progressed = false;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return { ended: false, progressed };
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let event = "message";
        let id = null;
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
          else if (line.startsWith("id:")) id = line.slice(3).trim();
        }
        if (!data.length) continue; // a heartbeat
        if (id) answer.lastEventId = id;
        progressed = true;
        if (handle(answer, event, JSON.parse(data.join("\n")))) {
          reader.cancel().catch(() => {});
          return { ended: true, progressed };
        }
      }
    }
  }

  // Follow the answer to its end: the first request, then, whenever the connection drops, the
  // run's stream after the last event read, a few times with growing pauses.
  async function follow(answer, firstRequest) {
    const signal = answer.controller.signal;
    let request = firstRequest;
    let attempt = 0;
    for (;;) {
      try {
        const response = await request(signal);
        if (response.ok) {
          const { ended, progressed } = await readStream(response, answer);
          if (ended) return;
          if (progressed) attempt = 0;
        } else if (response.status < 500 || !answer.runId) {
          answer.failure = await errorText(response);
          return;
        }
      } catch (e) {
        if (e.name === "AbortError") {
          answer.stopped = true; // the grace after a cancel ran out
          return;
        }
        // A network failure: the run goes on without us.
      }
      if (leaving) return;
      if (!answer.runId) {
        answer.failure = UNREACHABLE;
        return;
      }
      if (attempt >= RETRY_DELAYS_MS.length) {
        answer.failure = LOST;
        return;
      }
      if (!(await pause(RETRY_DELAYS_MS[attempt++], signal))) {
        answer.stopped = true;
        return;
      }
      request = joinRequest(answer);
    }
  }

  function setBusy(busy) {
    send.hidden = busy;
    stop.hidden = !busy;
    stop.disabled = false;
    updateComposer();
  }

  async function stream(answer, firstRequest) {
    current = answer;
    setBusy(true);
    try {
      await follow(answer, firstRequest);
    } finally {
      clearTimeout(answer.graceTimer);
      current = null;
      answer.view.msg.classList.remove("streaming");
      setBusy(false);
      input.focus();
    }
    if (leaving) return;
    if (answer.stopped) {
      markStopped(answer.view);
    } else if (answer.failure) {
      // The failed turn stays (its run is recorded, and a reload shows it); the retry is a new
      // one. A lost connection has no retry: its run may still be answering.
      const retry = answer.failure === LOST ? null : retryButton(answer.question);
      showError(answer.view, answer.failure, retry);
    } else if (answer.interrupt) {
      const card = addApprovalCard(answer.view, {
        run_id: answer.runId,
        tool_calls: answer.interrupt.tool_calls,
        decision: "",
      });
      card.node.focus(); // not a button: an Enter meant for the message box approves nothing
    }
  }

  function retryButton(question) {
    return (event) => {
      if (current || awaitingApproval()) return;
      event.currentTarget.remove();
      sendMessage(question);
    };
  }

  function sendMessage(text) {
    addUserMessage(text);
    const answer = newAnswer(addAssistantMessage(), text);
    return stream(answer, (signal) =>
      fetch(streamUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "text/event-stream" },
        body: JSON.stringify({ message: text, thread_id: threadId, on_disconnect: "continue" }),
        signal,
      }),
    );
  }

  // The runs the page shows as in progress (a reload during an answer): join each from its
  // first event, in order, into the bubble the template made for it.
  async function joinInProgress() {
    for (const msg of messages.querySelectorAll(".msg.assistant[data-run-active]")) {
      const answer = newAnswer(viewOf(msg), questionOf(msg), msg.dataset.runId);
      delete msg.dataset.runActive;
      await stream(answer, joinRequest(answer));
    }
  }

  // Stop cancels the run on the server (leaving its stream does not), then reads on until its
  // "cancelled" event arrives (so the thread is free for the next message), at most
  // CANCEL_GRACE_MS.
  function stopAnswer() {
    const answer = current;
    if (!answer || answer.stopping) return;
    answer.stopping = true;
    stop.disabled = true;
    // Without an id yet, the run is cancelled when its first event brings it (handle "run").
    if (answer.runId) cancelRun(answer);
  }

  async function cancelRun(answer) {
    let response = null;
    try {
      response = await fetch(`${runsUrl}${answer.runId}/cancel`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrf, Accept: "application/json" },
      });
    } catch (e) {
      /* unreachable: said below */
    }
    if (current !== answer) return;
    if (response && response.status === 409) return; // it has ended: its last event is on the way
    if (response && response.ok) {
      answer.graceTimer = setTimeout(() => answer.controller.abort(), CANCEL_GRACE_MS);
      return;
    }
    answer.stopping = false;
    stop.disabled = false;
    const reason = response ? await errorText(response) : UNREACHABLE;
    answer.view.meta.textContent = `Could not stop the answer: ${reason}`;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || current || awaitingApproval()) return;
    input.value = "";
    sendMessage(text);
  });

  stop.addEventListener("click", stopAnswer);

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    if (current) {
      event.preventDefault();
      stopAnswer();
    } else if (root.classList.contains("drawer-open")) {
      setDrawer(false);
    }
  });

  // --- Approvals -----------------------------------------------------------------------------
  //
  // A run that wants to call a tool needing a person's approval ends with an `interrupt` event
  // (a reloaded page has the same from the run's record, in data-approval): its bubble gets a
  // card with each waiting call, its arguments as text, and Approve / Edit / Reject. A decision
  // resumes the run (POST runs/{id}/resume, streamed): the continuation is a new run, streamed
  // into a bubble of its own under the card, as a reload shows it. While a card waits, the
  // thread takes no new message (the server would answer 409 thread_interrupted): Send waits.

  const DECISIONS = {
    approve: "Approved",
    edit: "Edited",
    reject: "Rejected",
    expired: "Expired: nobody decided in time, so the calls were rejected",
    superseded: "Rejected: a newer message replaced the request",
  };

  function pretty(value) {
    return JSON.stringify(value === undefined ? null : value, null, 2);
  }

  function cardButton(label, className) {
    const button = el("button", className, label);
    button.type = "button";
    return button;
  }

  function showNote(node, text) {
    node.textContent = text;
    node.hidden = !text;
  }

  function awaitingApproval() {
    return Boolean(messages.querySelector(".approval.pending"));
  }

  function updateComposer() {
    const waiting = awaitingApproval();
    composerHint.hidden = !waiting;
    form.classList.toggle("awaiting", waiting);
    send.disabled = Boolean(current) || waiting;
    input.placeholder = waiting ? "Waiting for your decision on the call above…" : "Message the agent…";
  }

  // A labelled text box of the card's forms.
  function field(card, name, label, value) {
    const id = `approval-${card.runId}-${name}`;
    const caption = el("label", null, label);
    caption.htmlFor = id;
    const box = el("textarea", `approval-${name}`);
    box.id = id;
    box.spellcheck = false;
    box.value = value;
    return { caption, box };
  }

  // One panel of the card (the editor, the rejection): Esc closes it, Ctrl+Enter submits it.
  function panel(card, className, parts, submitLabel, onSubmit) {
    const node = el("div", `approval-panel ${className}`);
    node.hidden = true;
    const error = el("div", "approval-error");
    error.hidden = true;
    error.setAttribute("role", "alert");
    const submit = cardButton(submitLabel, "approval-submit");
    const cancel = cardButton("Cancel", "approval-cancel");
    const buttons = el("div", "approval-actions");
    buttons.append(submit, cancel);
    node.append(...parts, error, buttons);
    submit.addEventListener("click", () => onSubmit(error));
    cancel.addEventListener("click", () => closePanels(card, true));
    node.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        closePanels(card, true);
      } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        onSubmit(error);
      }
    });
    return { node, error };
  }

  function openPanel(card, which, opener, focus) {
    card.actions.hidden = true;
    card.editor.node.hidden = which !== card.editor;
    card.rejecter.node.hidden = which !== card.rejecter;
    card.opener = opener;
    showNote(card.error, "");
    focus.focus();
  }

  function closePanels(card, refocus) {
    card.editor.node.hidden = true;
    card.rejecter.node.hidden = true;
    card.actions.hidden = false;
    if (refocus && card.opener) card.opener.focus();
  }

  function addApprovalCard(view, approval) {
    const calls = Array.isArray(approval.tool_calls) ? approval.tool_calls : [];
    const node = el("section", "approval pending");
    const card = { runId: approval.run_id, calls, msg: view.msg, node, busy: false, opener: null };
    node.tabIndex = -1;
    const title = el("h2", "approval-title", "Approval needed");
    title.id = `approval-${card.runId}-title`;
    node.setAttribute("aria-labelledby", title.id);
    const what = calls.length === 1 ? "this call" : `these ${calls.length} calls`;
    const intro = `The agent asks to run ${what}. Nothing runs until you decide.`;
    node.append(title, el("p", "approval-intro", intro));
    const list = el("ol", calls.length === 1 ? "approval-calls single" : "approval-calls");
    for (const call of calls) {
      const li = el("li", "approval-call");
      li.append(el("code", "approval-tool", String(call.name)), el("pre", "approval-args", pretty(call.args)));
      list.appendChild(li);
    }
    node.appendChild(list);

    // Edit: the arguments of one call as JSON, checked here before the server checks them
    // against the tool's schema.
    const args = field(card, "json", "Arguments (JSON)", calls.length ? pretty(calls[0].args) : "{}");
    args.box.rows = Math.min(14, Math.max(4, args.box.value.split("\n").length + 1));
    const editParts = [];
    let chooser = null;
    if (calls.length > 1) {
      const chooserId = `approval-${card.runId}-call`;
      const caption = el("label", null, "Call to edit");
      caption.htmlFor = chooserId;
      chooser = el("select", "approval-choose");
      chooser.id = chooserId;
      calls.forEach((call, i) => chooser.appendChild(new Option(`${i + 1}. ${call.name}`, String(i))));
      chooser.addEventListener("change", () => (args.box.value = pretty(calls[Number(chooser.value)].args)));
      editParts.push(caption, chooser);
    }
    editParts.push(args.caption, args.box, el("p", "approval-help", "Ctrl+Enter runs the call, Esc cancels."));
    card.editor = panel(card, "approval-editor", editParts, "Run with these arguments", (error) => {
      let parsed;
      try {
        parsed = JSON.parse(args.box.value);
      } catch (e) {
        args.box.setAttribute("aria-invalid", "true");
        showNote(error, `That is not valid JSON: ${e.message}`);
        args.box.focus();
        return;
      }
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
        args.box.setAttribute("aria-invalid", "true");
        showNote(error, "The arguments must be a JSON object, in { }.");
        args.box.focus();
        return;
      }
      args.box.removeAttribute("aria-invalid");
      const call = calls[chooser ? Number(chooser.value) : 0];
      decide(card, { decision: "edit", args: parsed, tool_call_id: String(call.id) }, error, args.box);
    });

    // Reject: with a comment for the agent, if the person has one.
    const comment = field(card, "comment", "Comment for the agent (optional)", "");
    comment.box.rows = 2;
    comment.box.maxLength = 2000;
    card.rejecter = panel(card, "approval-rejecter", [comment.caption, comment.box], "Reject the call", (error) =>
      decide(card, { decision: "reject", comment: comment.box.value.trim() }, error, comment.box),
    );

    const approve = cardButton("Approve", "approval-approve");
    const edit = cardButton("Edit", "approval-edit");
    const reject = cardButton("Reject", "approval-reject");
    approve.addEventListener("click", () => decide(card, { decision: "approve" }, card.error, null));
    edit.addEventListener("click", () => {
      // Each time from the call's own arguments: a cancelled edit is forgotten.
      args.box.value = pretty(calls[chooser ? Number(chooser.value) : 0].args);
      args.box.removeAttribute("aria-invalid");
      showNote(card.editor.error, "");
      openPanel(card, card.editor, edit, args.box);
    });
    reject.addEventListener("click", () => openPanel(card, card.rejecter, reject, comment.box));
    card.actions = el("div", "approval-actions");
    card.actions.append(approve, edit, reject);
    card.error = el("div", "approval-error");
    card.error.hidden = true;
    card.error.setAttribute("role", "alert");
    card.status = el("p", "approval-status");
    card.status.setAttribute("role", "status");
    card.status.hidden = true;
    node.append(card.actions, card.editor.node, card.rejecter.node, card.error, card.status);
    view.msg.insertBefore(node, view.meta);
    if (approval.decision) setDecided(card, approval);
    updateComposer();
    scrollDown();
    return card;
  }

  function setCardBusy(card, busy) {
    card.busy = busy;
    card.node.setAttribute("aria-busy", String(busy));
    card.node.querySelectorAll("button, textarea, select").forEach((control) => (control.disabled = busy));
  }

  // The card says what was decided (and with what) and takes no more decisions.
  function setDecided(card, decided, note) {
    const decision = decided.decision || "";
    card.node.classList.remove("pending");
    card.node.classList.add("decided", `decided-${decision || "unknown"}`);
    card.node.dataset.decision = decision;
    card.actions.remove();
    card.editor.node.remove();
    card.rejecter.node.remove();
    const label = DECISIONS[decision] || "No longer waiting for a decision";
    card.node.querySelector(".approval-title").textContent = "Approval";
    const what = card.calls.length === 1 ? "this call" : `these ${card.calls.length} calls`;
    card.node.querySelector(".approval-intro").textContent = `The agent asked to run ${what}.`;
    const parts = [`${label}.`];
    if (decision === "reject" && decided.comment) parts.push(`Your comment: “${decided.comment}”`);
    if (note) parts.push(note);
    card.status.textContent = parts.join(" ");
    card.status.hidden = false;
    if (decision === "edit" && decided.args) {
      const edited = card.calls.find((call) => String(call.id) === String(decided.tool_call_id));
      const name = edited ? edited.name : card.calls.length ? card.calls[0].name : "the call";
      card.node.append(
        el("p", "approval-ran", `Ran ${name} with these arguments:`),
        el("pre", "approval-args approval-edited", pretty(decided.args)),
      );
    }
    updateComposer();
  }

  // POST the decision; the answer is the continuation's stream, read like any answer's.
  async function decide(card, decision, errorNode, box) {
    if (card.busy || current) return;
    setCardBusy(card, true);
    showNote(card.error, "");
    showNote(errorNode, "");
    const controller = new AbortController();
    let response = null;
    try {
      response = await fetch(`${runsUrl}${card.runId}/resume`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "text/event-stream" },
        body: JSON.stringify({ ...decision, stream: true, on_disconnect: "continue" }),
        signal: controller.signal,
      });
    } catch (e) {
      /* unreachable: said below */
    }
    if (!response || !response.ok) {
      setCardBusy(card, false);
      const body = response ? await jsonOf(response) : {};
      if (response && response.status === 409 && body.code === "run_not_interrupted") {
        // Decided in another tab, or expired: say so, and show what the run says now.
        showNote(card.error, body.detail || "The run is no longer waiting for a decision.");
        await refreshCard(card);
        return;
      }
      // The schema's refusal of edited arguments goes under the arguments.
      const target = response && response.status === 400 ? errorNode : card.error;
      showNote(target, response ? await errorText(response, body) : UNREACHABLE);
      if (box && target === errorNode) {
        box.setAttribute("aria-invalid", "true");
        box.focus();
      }
      return;
    }
    setDecided(card, decision);
    const answer = newAnswer(continuation(card, decision), questionOf(card.msg));
    answer.controller = controller; // Stop's grace ends this very request too
    await stream(answer, () => Promise.resolve(response));
  }

  // The continuation's bubble, under the interrupted answer: the calls that waited (one with
  // its edited arguments) are its first tool calls, their results on the way.
  function continuation(card, decision) {
    const view = addAssistantMessage(card.msg);
    view.msg.classList.add("continuation");
    const edited = decision.decision === "edit" ? card.calls.find((c) => String(c.id) === decision.tool_call_id) : null;
    const waiting = [...card.msg.querySelectorAll("details.tools li")].filter((li) =>
      li.querySelector(".outcome.paused-for-approval"),
    );
    let target = null;
    if (edited) {
      const named = waiting.filter((li) => li.querySelector("code").textContent === edited.name);
      const original = JSON.stringify(edited.args);
      target = named.find((li) => li.querySelector(".args").textContent === original) || named[0] || null;
    }
    for (const li of waiting) {
      const argsText = li === target ? JSON.stringify(decision.args) : li.querySelector(".args").textContent;
      addToolCall(view, li.querySelector("code").textContent, argsText);
    }
    return view;
  }

  // After a 409: what the run's record says was decided.
  async function refreshCard(card) {
    let run = null;
    try {
      const response = await fetch(`${runsUrl}${card.runId}`, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (response.ok) run = await response.json();
    } catch (e) {
      /* the card says it no longer waits, below */
    }
    const decision = run ? run.decision : "";
    const resumed = ["approve", "edit", "reject"].includes(decision);
    setDecided(card, { decision }, resumed ? "Reload the page to see the answer." : "");
  }

  // --- Conversation list: date groups, rename, delete ----------------------------------------

  const GROUPS = ["Today", "Yesterday", "Previous 7 days", "Older"];

  function groupOf(updated, now) {
    const day = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
    const days = Math.round((day(now) - day(updated)) / 86400000);
    if (days <= 0) return GROUPS[0];
    if (days === 1) return GROUPS[1];
    if (days <= 7) return GROUPS[2];
    return GROUPS[3];
  }

  function threadItems() {
    return [...threads.querySelectorAll("li[data-thread-id]")];
  }

  // The list arrives newest first; put each item under its heading, in the browser's time zone.
  function regroup() {
    const items = threadItems().sort((a, b) => (b.dataset.updated || "").localeCompare(a.dataset.updated || ""));
    const now = new Date();
    const lists = new Map();
    const children = [];
    for (const li of items) {
      const name = groupOf(new Date(li.dataset.updated || now), now);
      if (!lists.has(name)) {
        const ul = el("ul", "thread-list");
        lists.set(name, ul);
        const section = el("section", "thread-group");
        section.dataset.group = name;
        section.append(el("h2", null, name), ul);
        children.push(section);
      }
      lists.get(name).appendChild(li);
    }
    if (!items.length) {
      const ul = el("ul", "thread-list");
      ul.appendChild(el("li", "empty", "No conversations yet."));
      children.push(ul);
    }
    threads.replaceChildren(...children);
  }

  function actionButton(className, label, symbol) {
    const button = el("button", className, symbol);
    button.type = "button";
    button.title = label;
    button.setAttribute("aria-label", label);
    return button;
  }

  function decorate(li) {
    if (li.querySelector(".thread-actions")) return;
    const actions = el("span", "thread-actions");
    actions.append(actionButton("rename", "Rename", "✎"), actionButton("delete", "Delete", "✕"));
    li.appendChild(actions);
  }

  async function api(method, id, body) {
    const response = await fetch(`${threadsUrl}${id}`, {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return response;
  }

  function startRename(li) {
    const link = li.querySelector("a");
    if (!link || li.querySelector("input.rename-input")) return;
    const field = el("input", "rename-input");
    field.value = link.textContent;
    field.maxLength = 200;
    field.setAttribute("aria-label", "New title");
    link.hidden = true;
    li.insertBefore(field, link);
    field.focus();
    field.select();
    let busy = false;
    const finish = () => {
      field.remove();
      link.hidden = false;
    };
    field.addEventListener("keydown", async (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        finish();
      } else if (event.key === "Enter" && !busy) {
        event.preventDefault();
        busy = true;
        const response = await api("PATCH", li.dataset.threadId, { title: field.value.trim() });
        busy = false;
        if (response.ok) {
          const thread = await response.json();
          link.textContent = thread.title;
          if (li.dataset.threadId === threadId) {
            title.textContent = thread.title;
            document.title = `${thread.title} · Chat`;
          }
          finish();
        } else {
          field.classList.add("invalid");
          field.title = await errorText(response);
        }
      }
    });
    field.addEventListener("blur", () => {
      if (!busy) finish();
    });
  }

  async function deleteThread(li) {
    const name = li.querySelector("a").textContent;
    if (!window.confirm(`Delete the conversation “${name}”? Its messages and runs are deleted for good.`)) return;
    const response = await api("DELETE", li.dataset.threadId);
    if (!response.ok && response.status !== 404) {
      window.alert(await errorText(response));
      return;
    }
    if (li.dataset.threadId === threadId) {
      window.location.assign("/chat/");
      return;
    }
    li.remove();
    regroup();
  }

  threads.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    const li = button.closest("li[data-thread-id]");
    if (button.classList.contains("rename")) startRename(li);
    else if (button.classList.contains("delete")) deleteThread(li);
  });

  function rememberThread(id, firstMessage) {
    const known = threads.querySelector(`li[data-thread-id="${id}"]`);
    threadId = id;
    let li = known;
    if (!li) {
      li = el("li");
      li.dataset.threadId = id;
      const name = firstMessage.split(/\s+/).join(" ");
      const link = el("a", null, name.length > 80 ? name.slice(0, 79) + "…" : name);
      link.href = `/chat/${id}/`;
      li.appendChild(link);
      decorate(li);
      history.replaceState(null, "", `/chat/${id}/`);
      title.textContent = link.textContent;
    }
    threadItems().forEach((item) => item.classList.remove("active"));
    li.classList.add("active");
    li.dataset.updated = new Date().toISOString();
    if (!known) threads.appendChild(li);
    regroup();
  }

  // --- Start ---------------------------------------------------------------------------------

  messages.querySelectorAll(".body[data-markdown]").forEach((body) => renderMarkdown(body, body.textContent));
  // A failed answer from before the reload can be retried as well.
  messages.querySelectorAll(".msg.assistant.failed").forEach((msg) => {
    const question = questionOf(msg);
    if (!question) return;
    const button = el("button", "retry", "Retry");
    button.type = "button";
    button.addEventListener("click", retryButton(question));
    msg.querySelector(".error").appendChild(button);
  });
  // The approval cards of interrupted runs, from their records: waiting, or decided.
  messages.querySelectorAll(".msg.assistant[data-approval]").forEach((msg) => {
    let approval;
    try {
      approval = JSON.parse(msg.dataset.approval);
    } catch (e) {
      return;
    }
    addApprovalCard(viewOf(msg), approval);
  });
  threadItems().forEach(decorate);
  regroup();
  updateComposer();
  scrollDown();
  (messages.querySelector(".approval.pending") || input).focus();
  joinInProgress();
})();
