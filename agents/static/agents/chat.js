// The chat page: sends messages to the streaming run endpoint and renders its events; joins a
// run's stream again after a reload or a lost connection (see "Streaming an answer").
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

  function addAssistantMessage() {
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
    messages.appendChild(msg);
    scrollDown();
    return viewOf(msg);
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
      case "tool_call": {
        const li = el("li");
        li.appendChild(el("code", null, data.name));
        li.appendChild(document.createTextNode(" "));
        li.appendChild(el("span", "args", JSON.stringify(data.args)));
        const outcome = el("span", "outcome", " …");
        li.appendChild(outcome);
        view.toolList.appendChild(li);
        view.pending.push({ name: data.name, outcome });
        view.tools.hidden = false;
        view.toolsSummary.textContent = `Tool calls (${view.toolList.children.length})`;
        break;
      }
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
        return true;
    }
    return false;
  }

  async function errorText(response) {
    let body = {};
    try {
      body = await response.json();
    } catch (e) {
      /* not JSON */
    }
    if (response.status === 429) {
      const wait = response.headers.get("Retry-After");
      return `You're sending messages too fast. Try again${wait ? ` in ${wait} seconds` : " shortly"}.`;
    }
    if (response.status === 401 || response.status === 403) {
      return "Your session has expired. Reload the page and log in again.";
    }
    if (body.errors && body.errors.message) return body.errors.message.join(" ");
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
    send.disabled = busy;
    send.hidden = busy;
    stop.hidden = !busy;
    stop.disabled = false;
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
    }
  }

  function retryButton(question) {
    return (event) => {
      if (current) return;
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
      const question = msg.previousElementSibling.querySelector(".body").textContent;
      const answer = newAnswer(viewOf(msg), question, msg.dataset.runId);
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
    if (!text || current) return;
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
    const question = msg.previousElementSibling;
    if (!question || !question.classList.contains("user")) return;
    const button = el("button", "retry", "Retry");
    button.type = "button";
    button.addEventListener("click", retryButton(question.querySelector(".body").textContent));
    msg.querySelector(".error").appendChild(button);
  });
  threadItems().forEach(decorate);
  regroup();
  scrollDown();
  input.focus();
  joinInProgress();
})();
