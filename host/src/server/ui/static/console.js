// The web console's one script. A form with `data-api="/api/v1/..."` is sent to the API as
// JSON, as the signed-in user: the session cookie goes along, and the session's CSRF token
// (from <meta name="csrf-token">) in the X-CSRF-Token header. The answer's error, if any, is
// shown in the form; on success the page reloads, or goes to `data-next` (where `{id}` is
// replaced by the answer's `id`).
//
// Fields: `name="a.b"` nests; `data-type="number"` sends a number, `data-type="json"` parsed
// JSON, `data-type="lines"` a list of the non-empty lines; empty fields marked `data-optional`
// are left out; a checkbox sends true or false; a field named "." is the whole body. A form
// with `data-upload="NAME"` sends the file chosen in its file field NAME as the body instead
// (application/octet-stream), as it is. `data-working="TEXT"` is shown while the answer is
// awaited.
"use strict";

function setPath(obj, path, value) {
  const parts = path.split(".");
  let at = obj;
  for (const p of parts.slice(0, -1)) {
    if (typeof at[p] !== "object" || at[p] === null) at[p] = {};
    at = at[p];
  }
  at[parts[parts.length - 1]] = value;
}

function formBody(form) {
  const body = {};
  let whole;
  for (const el of form.elements) {
    if (!el.name || el.disabled || el.type === "submit") continue;
    if (el.type === "checkbox") { setPath(body, el.name, el.checked); continue; }
    if (el.type === "radio" && !el.checked) continue;
    let value = el.value;
    if (value.trim() === "" && el.dataset.optional !== undefined) continue;
    switch (el.dataset.type) {
      case "number": value = Number(value); break;
      case "json": value = JSON.parse(value || "null"); break;
      case "lines": value = value.split("\n").map((l) => l.trim()).filter((l) => l); break;
    }
    if (el.name === ".") whole = value;
    else setPath(body, el.name, value);
  }
  return whole === undefined ? body : whole;
}

function show(form, cls, text) {
  let box = form.querySelector(".result");
  if (!box) {
    box = document.createElement("div");
    form.appendChild(box);
  }
  box.className = "result " + cls;
  box.setAttribute("role", cls === "error" ? "alert" : "status");
  box.textContent = text;
}

document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.dataset.api) return;
  event.preventDefault();
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
  let body;
  let type = "application/json";
  if (form.dataset.upload) {
    const file = form.elements[form.dataset.upload].files[0];
    if (!file) {
      show(form, "error", "Choose a file first.");
      return;
    }
    body = file;
    type = "application/octet-stream";
  } else {
    try {
      body = JSON.stringify(formBody(form));
    } catch (e) {
      show(form, "error", "A field is not valid JSON: " + e.message);
      return;
    }
  }
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const button = form.querySelector('button[type="submit"], button:not([type])');
  if (button) button.disabled = true;
  if (form.dataset.working) show(form, "notice", form.dataset.working);
  try {
    const response = await fetch(form.dataset.api, {
      method: form.dataset.method || "POST",
      credentials: "same-origin",
      headers: { "content-type": type, accept: "application/json", "x-csrf-token": csrf },
      body,
    });
    let answer = null;
    try { answer = await response.json(); } catch (_) { answer = null; }
    if (!response.ok) {
      const why = answer && (answer.detail || answer.title) ? (answer.detail || answer.title) : response.statusText;
      show(form, "error", "Refused (" + response.status + "): " + why);
      return;
    }
    show(form, "notice", "Done.");
    if (form.dataset.next) {
      const id = answer && answer.id ? encodeURIComponent(answer.id) : "";
      window.location.assign(form.dataset.next.replace("{id}", id));
    } else {
      window.location.reload();
    }
  } catch (e) {
    show(form, "error", "Osprey could not be reached: " + e.message);
  } finally {
    if (button) button.disabled = false;
  }
});
