// The API explorer at /api/docs (server/openapi.rs): reads /api/openapi.json and lists each
// operation by tag, with its parameters, request body and responses, and a form to try it
// with a pasted token. Builds the page with DOM calls and textContent only (never HTML
// from the document). The token stays in this tab (sessionStorage).
"use strict";
(function () {
  const METHODS = ["get", "post", "put", "patch", "delete"];
  const tokenInput = document.getElementById("token");
  tokenInput.value = sessionStorage.getItem("osprey-token") || "";
  tokenInput.addEventListener("input", () => sessionStorage.setItem("osprey-token", tokenInput.value.trim()));

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else e.setAttribute(k, v);
    }
    for (const c of children) if (c != null) e.append(c);
    return e;
  }

  function text(s) {
    // Paragraphs of the description, as text.
    const div = el("div");
    for (const p of String(s || "").split(/\n\n+/)) if (p.trim()) div.append(el("p", {}, p.trim()));
    return div;
  }

  // A schema with its $refs resolved (to a depth), for reading.
  function resolve(doc, schema, depth) {
    if (schema == null || typeof schema !== "object") return schema;
    if (Array.isArray(schema)) return schema.map((s) => resolve(doc, s, depth));
    if (schema.$ref) {
      const name = schema.$ref.split("/").pop();
      if (depth > 4) return { $ref: name };
      const target = schema.$ref.split("/").slice(1).reduce((o, k) => (o ? o[k] : undefined), doc);
      return resolve(doc, target, depth + 1);
    }
    const out = {};
    for (const [k, v] of Object.entries(schema)) out[k] = resolve(doc, v, depth);
    return out;
  }

  // A skeleton body from a schema: required fields with placeholder values.
  function skeleton(schema) {
    if (!schema) return undefined;
    if (schema.example !== undefined) return schema.example;
    if (schema.allOf) return Object.assign({}, ...schema.allOf.map(skeleton).filter((x) => x && typeof x === "object"));
    const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
    if (schema.enum) return schema.enum[0];
    if (type === "object" || schema.properties) {
      const o = {};
      for (const k of schema.required || []) o[k] = skeleton(schema.properties[k]);
      return o;
    }
    if (type === "array") return [];
    if (type === "integer" || type === "number") return 0;
    if (type === "boolean") return false;
    return "";
  }

  function operation(doc, path, method, op) {
    const params = op.parameters || [];
    const body = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
    const details = el("details", {},
      el("summary", {}, el("span", { class: "m " + method }, method.toUpperCase()), " ", el("code", {}, path), " — ", op.summary || ""));
    details.append(text(op.description));
    if (params.length) {
      const table = el("table", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"), el("th", {}, "description")));
      for (const p of params) {
        table.append(el("tr", {}, el("td", {}, el("code", {}, p.name + (p.required ? "" : "?"))), el("td", {}, p.in), el("td", {}, p.description || "")));
      }
      details.append(el("h4", {}, "Parameters"), table);
    }
    if (body) {
      details.append(el("h4", {}, "Request body"), text(op.requestBody.description),
        el("pre", {}, JSON.stringify(resolve(doc, body.schema, 0), null, 2)));
    }
    const responses = el("table", {}, el("tr", {}, el("th", {}, "status"), el("th", {}, "meaning")));
    for (const [status, r] of Object.entries(op.responses || {})) {
      const resp = resolve(doc, r, 0) || {};
      responses.append(el("tr", {}, el("td", {}, status), el("td", {}, resp.description || "")));
    }
    details.append(el("h4", {}, "Responses"), responses);

    // Try it.
    const form = el("form");
    const inputs = {};
    for (const p of params) {
      const id = "p-" + (op.operationId || path) + "-" + p.name;
      inputs[p.name] = el("input", { id, name: p.name, placeholder: p.in === "path" ? "required" : "optional" });
      form.append(el("label", { for: id }, p.name + " (" + p.in + ")"), inputs[p.name]);
    }
    let bodyInput = null;
    if (body) {
      const id = "b-" + (op.operationId || path);
      const example = skeleton(resolve(doc, body.schema, 0));
      bodyInput = el("textarea", { id, rows: "6" });
      bodyInput.value = JSON.stringify(example === undefined ? {} : example, null, 2);
      form.append(el("label", { for: id }, "body (JSON)"), bodyInput);
    }
    const out = el("pre");
    form.append(el("button", { type: "submit" }, "Send"), out);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      let url = path;
      const query = new URLSearchParams();
      for (const p of params) {
        const v = inputs[p.name].value.trim();
        if (p.in === "path") url = url.replace("{" + p.name + "}", p.name === "value" ? encodeURI(v) : encodeURIComponent(v));
        else if (v) query.set(p.name, v);
      }
      if ([...query].length) url += "?" + query;
      const headers = {};
      const token = tokenInput.value.trim();
      if (token) headers["Authorization"] = "Bearer " + token;
      const init = { method: method.toUpperCase(), headers };
      if (bodyInput) {
        headers["Content-Type"] = "application/json";
        init.body = bodyInput.value;
      }
      out.textContent = method.toUpperCase() + " " + url + " …";
      try {
        const r = await fetch(url, init);
        const t = await r.text();
        let shown = t;
        try { shown = JSON.stringify(JSON.parse(t), null, 2); } catch (_) { /* not JSON */ }
        out.textContent = r.status + " " + r.statusText + "\n" + shown;
      } catch (e) {
        out.textContent = "the request failed: " + e;
      }
    });
    details.append(el("h4", {}, "Try it"), form);
    return details;
  }

  async function load() {
    const ops = document.getElementById("ops");
    let doc;
    try {
      doc = await (await fetch("/api/openapi.json")).json();
    } catch (e) {
      ops.replaceChildren(el("p", {}, "The document could not be loaded: " + e));
      return;
    }
    const byTag = new Map((doc.tags || []).map((t) => [t.name, []]));
    for (const [path, item] of Object.entries(doc.paths || {})) {
      for (const method of METHODS) {
        const op = item[method];
        if (!op) continue;
        const tag = (op.tags && op.tags[0]) || "other";
        if (!byTag.has(tag)) byTag.set(tag, []);
        byTag.get(tag).push(operation(doc, path, method, op));
      }
    }
    const sections = [el("p", {}, (doc.info.title || "") + " " + (doc.info.version || "")), text(doc.info.description)];
    for (const t of doc.tags || []) byTag.get(t.name).description = t.description;
    for (const [tag, list] of byTag) {
      if (!list.length) continue;
      sections.push(el("h2", { id: "tag-" + tag }, tag));
      if (list.description) sections.push(el("p", {}, list.description));
      sections.push(...list);
    }
    ops.replaceChildren(...sections);
  }
  load();
})();
