// The chat box's browser side (an anywidget ES module): the scrolling transcript, the input, Send and Stop.
// Enter sends {event: "submit", text}: the text travels WITH the submit, so a value update that
// ipywidgets holds back while the kernel has not acknowledged the previous one can never be
// overtaken (the cause of cut-off messages). Copy and "insert into a new cell below" run here.

function notebookModel(model) {
  // the notebook's own document context, as JupyterLab's widget manager holds it (public getter)
  const manager = model.widget_manager;
  const context = manager && manager.context;
  return context && context.model ? context.model : null;
}

function hostCellIndex(notebook, hostId) {
  // the cell whose outputs show this chat box (found by its widget's model id, not by the DOM)
  const cells = notebook.cells;
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    const outputs = cell.outputs ? cell.outputs.toJSON() : [];
    for (const output of outputs) {
      const view = output.data && output.data["application/vnd.jupyter.widget-view+json"];
      if (view && view.model_id === hostId) return i;
    }
  }
  return -1;
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (err) {  // no clipboard permission: select the text so Ctrl+C works
    const area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  button.dataset.done = "copied";
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = button.dataset.label || "Copy"; delete button.dataset.done; }, 1500);
}

function render({ model, el }) {
  el.classList.add("azml-chat-panel");
  const log = document.createElement("div");
  log.className = "azml-chat-log";
  const row = document.createElement("div");
  row.className = "azml-chat-inputrow";
  const input = document.createElement("textarea");
  input.className = "azml-chat-text";
  input.rows = 2;
  input.placeholder = model.get("placeholder");
  const send = document.createElement("button");
  send.className = "azml-chat-send jupyter-button mod-primary";
  send.textContent = "Send";
  const stop = document.createElement("button");
  stop.className = "azml-chat-stop jupyter-button mod-danger";
  stop.textContent = "Stop";
  row.append(input, send, stop);
  el.append(log, row);
  // side by side: the columns show no input of their own (one shared input sends to all), and the
  // shared input shows no transcript; each column keeps its own Stop
  if (!model.get("input_shown")) { input.style.display = "none"; send.style.display = "none"; }
  if (!model.get("log_shown")) log.style.display = "none";

  const submit = () => {
    const text = input.value;  // read once, now: this is what is sent
    if (model.get("busy") || !text.trim()) return;
    input.value = "";
    model.send({ event: "submit", text });
  };
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    }
  });
  send.addEventListener("click", submit);
  stop.addEventListener("click", () => model.send({ event: "stop" }));

  log.addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-azml]");
    if (!button) return;
    const action = button.dataset.azml;
    const holder = button.closest("[data-raw], .azml-code");
    const text = holder ? (holder.querySelector(":scope > .azml-raw, :scope > pre code") || {}).textContent || "" : "";
    if (action === "copy") {
      copyText(text, button);
    } else if (action === "insert") {
      const notebook = notebookModel(model);
      const at = notebook ? hostCellIndex(notebook, model.get("host")) : -1;
      if (at < 0) {
        button.textContent = "No notebook here";
        return;
      }
      notebook.sharedModel.insertCell(at + 1, { cell_type: "code", source: text });
      button.textContent = "Inserted";
    } else {
      model.send({ event: action });  // regenerate, edit
    }
  });

  let pinned = true;  // follow the newest text unless the reader scrolled up
  log.addEventListener("scroll", () => {
    pinned = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
  });
  const draw = () => {
    log.innerHTML = model.get("transcript");
    if (pinned) log.scrollTop = log.scrollHeight;
  };
  const state = () => {
    const busy = model.get("busy");
    send.disabled = busy;
    stop.disabled = !busy;
    el.classList.toggle("azml-busy", busy);
  };
  const draft = () => {
    input.value = model.get("draft");
    input.focus();
  };
  model.on("change:transcript", draw);
  model.on("change:busy", state);
  model.on("change:draft_serial", draft);
  draw();
  state();
  return () => {
    model.off("change:transcript", draw);
    model.off("change:busy", state);
    model.off("change:draft_serial", draft);
  };
}

export default { render };
