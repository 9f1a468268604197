// The chat page: sends messages to the streaming run endpoint and renders its events.
// Everything the model says is inserted with textContent, so no answer can inject markup.
(function () {
  "use strict";

  const root = document.getElementById("chat");
  if (!root) return;
  const streamUrl = root.dataset.streamUrl;
  const csrf = root.querySelector("input[name=csrfmiddlewaretoken]").value;
  const messages = document.getElementById("messages");
  const form = document.getElementById("composer");
  const input = document.getElementById("message");
  const send = document.getElementById("send");
  const threads = document.getElementById("threads");
  let threadId = root.dataset.threadId || null;

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
  }

  function addAssistantMessage() {
    const msg = el("div", "msg assistant streaming");
    const plan = el("details", "plan");
    plan.hidden = true;
    plan.appendChild(el("summary", null, "Plan"));
    const planBody = el("pre", "plan-body");
    plan.appendChild(planBody);
    const tools = el("details", "tools");
    tools.hidden = true;
    const toolsSummary = el("summary", null, "Tool calls");
    tools.appendChild(toolsSummary);
    const toolList = el("ul");
    tools.appendChild(toolList);
    const body = el("div", "body");
    const meta = el("div", "meta");
    const error = el("div", "error");
    error.hidden = true;
    error.setAttribute("role", "alert");
    msg.append(plan, tools, body, error, meta);
    messages.appendChild(msg);
    scrollDown();
    return { msg, plan, planBody, tools, toolsSummary, toolList, body, meta, error, pending: [] };
  }

  function showError(view, text) {
    view.error.textContent = text;
    view.error.hidden = false;
    view.msg.classList.add("failed");
    scrollDown();
  }

  function rememberThread(id, title) {
    if (threadId === id && threads.querySelector(`li[data-thread-id="${id}"]`)) return;
    threadId = id;
    history.replaceState(null, "", `/chat/${id}/`);
    const empty = threads.querySelector("li.empty");
    if (empty) empty.remove();
    threads.querySelectorAll("li.active").forEach((li) => li.classList.remove("active"));
    let li = threads.querySelector(`li[data-thread-id="${id}"]`);
    if (!li) {
      li = el("li");
      li.dataset.threadId = id;
      const link = el("a", null, title.length > 80 ? title.slice(0, 79) + "…" : title);
      link.href = `/chat/${id}/`;
      li.appendChild(link);
    }
    li.classList.add("active");
    threads.prepend(li);
  }

  function handle(view, event, data, firstMessage) {
    switch (event) {
      case "run":
        rememberThread(data.thread_id, firstMessage);
        break;
      case "plan":
        view.planBody.textContent = data.plan || "";
        view.plan.hidden = !data.plan;
        break;
      case "tool_call": {
        const li = el("li");
        li.appendChild(el("code", null, data.name));
        li.appendChild(document.createTextNode(" " + JSON.stringify(data.args)));
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
        view.body.textContent += data.text;
        scrollDown();
        break;
      case "done": {
        view.body.textContent = data.response;
        const usage = data.usage && data.usage.total_tokens != null ? ` · ${data.usage.total_tokens} tokens` : "";
        view.meta.textContent = `${data.model} · ${(data.latency_ms / 1000).toFixed(1)} s${usage}`;
        if (data.trace_url) {
          const link = el("a", "trace", "View trace");
          link.href = data.trace_url;
          link.target = "_blank";
          link.rel = "noopener";
          view.meta.append(" · ", link);
        }
        view.msg.classList.remove("streaming");
        break;
      }
      case "error":
        showError(view, data.detail || "The agent failed to answer.");
        break;
    }
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

  async function sendMessage(text) {
    addUserMessage(text);
    const view = addAssistantMessage();
    let response;
    try {
      response = await fetch(streamUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "text/event-stream" },
        body: JSON.stringify({ message: text, thread_id: threadId }),
      });
    } catch (e) {
      showError(view, "Could not reach the server. Check your connection and try again.");
      return;
    }
    if (!response.ok) {
      showError(view, await errorText(response));
      return;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let event = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
        }
        if (data.length) handle(view, event, JSON.parse(data.join("\n")), text);
      }
    }
    view.msg.classList.remove("streaming");
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || send.disabled) return;
    input.value = "";
    send.disabled = true;
    try {
      await sendMessage(text);
    } finally {
      send.disabled = false;
      input.focus();
    }
  });

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  scrollDown();
})();
