/* The submit form: an example spec laid out as fields (one per leaf, named by its dotted
   path, e.g. "model.layers[0].size"), or edited as JSON; POST /api/v1/jobs; each field
   error of the problem+json answer is shown beside its field. */
"use strict";

(() => {
  const examples = dl.data("examples-data");
  const select = document.getElementById("example");
  const fields = document.getElementById("spec-fields");
  const textarea = document.getElementById("spec-json");
  const editor = document.getElementById("json-editor");
  const problemBox = document.getElementById("form-problem");
  let spec = {};

  const child = (path, key) => (typeof key === "number" ? `${path}[${key}]` : path ? `${path}.${key}` : key);

  /** The form of a JSON value: a fieldset per object or list, a field per leaf. */
  function build(value, path, label) {
    if (value !== null && typeof value === "object" && Object.keys(value).length) {
      const set = dl.el("fieldset", { "data-field": path || "body" }, dl.el("legend", { text: label || "spec" }));
      const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
      for (const [key, item] of entries) set.append(build(item, child(path, key), Array.isArray(value) ? `[${key}]` : key));
      set.append(dl.el("span", { class: "field-error" }));
      return set;
    }
    const kind = value === null ? "null" : Array.isArray(value) ? "json" : typeof value === "object" ? "json" : typeof value;
    const inputId = "f-" + path.replace(/[^A-Za-z0-9]/g, "_");
    const input = kind === "boolean"
      ? dl.el("input", { type: "checkbox", id: inputId, checked: value })
      : dl.el("input", { type: "text", id: inputId, value: kind === "json" ? JSON.stringify(value) : value === null ? "" : String(value),
                         placeholder: kind === "null" ? "null" : null });
    input.dataset.kind = kind;
    input.dataset.path = path;
    return dl.el("div", { class: "field", "data-field": path }, dl.el("label", { for: inputId, text: label }), input,
                 dl.el("span", { class: "field-error" }));
  }

  /** A leaf's value as typed: numbers stay numbers; text that is not a number is sent as it is,
   *  so the service names the field and says what it expected. */
  function read(input) {
    const raw = input.value.trim();
    switch (input.dataset.kind) {
      case "boolean": return input.checked;
      case "number": return raw !== "" && !Number.isNaN(Number(raw)) ? Number(raw) : raw;
      case "null": if (raw === "") return null; // falls through: a value typed into an empty field
      case "json": try { return JSON.parse(raw); } catch (_) { return raw; }
      default: return input.value;
    }
  }

  /** The spec the form holds now. */
  function collect() {
    if (editor.open) return JSON.parse(textarea.value);
    const out = JSON.parse(JSON.stringify(spec));
    for (const input of fields.querySelectorAll("input[data-path]")) {
      const parts = input.dataset.path.match(/[^.[\]]+/g);
      let node = out;
      parts.slice(0, -1).forEach((part) => { node = node[/^\d+$/.test(part) ? Number(part) : part]; });
      const last = parts[parts.length - 1];
      node[/^\d+$/.test(last) ? Number(last) : last] = read(input);
    }
    return out;
  }

  function show(value) {
    spec = value;
    fields.textContent = "";
    fields.append(build(value, "", "spec"));
    textarea.value = JSON.stringify(value, null, 2);
    clearErrors();
  }

  function clearErrors() {
    dl.showProblem(problemBox, null);
    for (const node of fields.querySelectorAll(".has-error")) node.classList.remove("has-error");
    for (const node of fields.querySelectorAll(".field-error")) node.textContent = "";
  }

  /** The element of a field the service named, or of the nearest enclosing one the form has. */
  function placeOf(field) {
    let path = field;
    while (path) {
      const node = fields.querySelector(`[data-field="${CSS.escape(path)}"]`);
      if (node) return node;
      path = path.replace(/(\[\d+\]|\.[^.[\]]*|^[^.[\]]*)$/, "");
    }
    return null;
  }

  function showErrors(problem, status) {
    clearErrors();
    dl.showProblem(problemBox, problem, status);
    for (const error of (problem && problem.errors) || []) {
      const place = placeOf(error.field);
      if (!place) continue;
      place.classList.add("has-error");
      const slot = place.querySelector(":scope > .field-error");
      slot.textContent = (slot.textContent ? slot.textContent + "; " : "") +
        (place.dataset.field === error.field ? error.message : `${error.field}: ${error.message}`);
    }
  }

  select.addEventListener("change", () => show(select.value ? examples[select.value] : {}));
  document.getElementById("json-apply").addEventListener("click", () => {
    try { show(JSON.parse(textarea.value)); editor.open = false; }
    catch (e) { dl.showProblem(problemBox, { title: "Not JSON", detail: String(e) }, 400); }
  });
  document.getElementById("submit-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    let body;
    try { body = collect(); } catch (e) { dl.showProblem(problemBox, { title: "Not JSON", detail: String(e) }, 400); return; }
    const answer = await dl.api("/jobs", { method: "POST", body: JSON.stringify(body) }).catch(() => null);
    if (!answer) { dl.showProblem(problemBox, { title: "The service did not answer" }, 0); return; }
    if (answer.ok) { location.href = `/jobs/${answer.body.id}`; return; }
    showErrors(answer.body, answer.status);
  });
  show(select.value ? examples[select.value] || {} : {});
})();
