// The chat page: sends messages to the streaming run endpoint and renders its events.
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
  let controller = null; // the AbortController of the answer being streamed

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
    const planBody = el("pre", "plan-body");
    plan.appendChild(planBody);
    const tools = el("details", "tools");
    tools.hidden = true;
    const toolsSummary = el("summary", null, "Tool calls");
    tools.appendChild(toolsSummary);
    const toolList = el("ul");
    tools.appendChild(toolList);
    const body = el("div", "body markdown");
    const meta = el("div", "meta");
    const error = el("div", "error");
    error.hidden = true;
    error.setAttribute("role", "alert");
    msg.append(plan, tools, body, error, meta);
    messages.appendChild(msg);
    scrollDown();
    return { msg, plan, planBody, tools, toolsSummary, toolList, body, meta, error, pending: [], text: "", frame: 0 };
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
        break;
      case "error":
        return data.detail || "The agent failed to answer.";
    }
    return null;
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

  async function sendMessage(text) {
    addUserMessage(text);
    const view = addAssistantMessage();
    // The failed turn stays (its run is recorded, and a reload shows it); the retry is a new one.
    const retry = (event) => {
      if (controller) return;
      event.currentTarget.remove();
      submit(text);
    };
    controller = new AbortController();
    let failure = null;
    try {
      const response = await fetch(streamUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "text/event-stream" },
        body: JSON.stringify({ message: text, thread_id: threadId }),
        signal: controller.signal,
      });
      if (!response.ok) {
        failure = await errorText(response);
      } else {
        failure = await readStream(response, view, text);
      }
    } catch (e) {
      if (e.name === "AbortError") {
        // Closing the stream stops the run on the server, which records it as cancelled.
        markStopped(view);
      } else {
        failure = "Could not reach the server. Check your connection and try again.";
      }
    } finally {
      controller = null;
      view.msg.classList.remove("streaming");
    }
    if (failure) showError(view, failure, retry);
  }

  async function readStream(response, view, text) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let failure = null;
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
        if (data.length) failure = handle(view, event, JSON.parse(data.join("\n")), text) || failure;
      }
    }
    return failure;
  }

  async function submit(text) {
    send.disabled = true;
    send.hidden = true;
    stop.hidden = false;
    try {
      await sendMessage(text);
    } finally {
      send.disabled = false;
      send.hidden = false;
      stop.hidden = true;
      input.focus();
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || controller) return;
    input.value = "";
    submit(text);
  });

  function stopAnswer() {
    if (controller) controller.abort();
  }
  stop.addEventListener("click", stopAnswer);

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    if (controller) {
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
    button.addEventListener("click", () => {
      if (controller) return;
      button.remove();
      submit(question.querySelector(".body").textContent);
    });
    msg.querySelector(".error").appendChild(button);
  });
  threadItems().forEach(decorate);
  regroup();
  scrollDown();
  input.focus();
})();
