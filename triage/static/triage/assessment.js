/* The triage form's live ENISA severity: posts the inputs to /api/severity/ as they change and
   shows the score, band and reasons (no side effects). Loaded from a static file: the content
   security policy allows no inline script. */
(function () {
  "use strict";
  var form = document.getElementById("assessment-form");
  var out = document.getElementById("severity-live");
  if (!form || !out || !window.fetch) { return; }
  var url = form.getAttribute("data-severity-url");
  var token = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  var levels = ["ease_of_identification", "confidentiality_loss", "integrity_loss", "availability_loss"];
  var labels = {low: "Low", medium: "Medium", high: "High", very_high: "Very high"};
  var sequence = 0;
  var timer = null;

  function payload() {
    var data = new FormData(form);
    var inputs = {credentials_give_access_to: data.get("credentials_give_access_to") || null, dpc_adjustments: []};
    levels.forEach(function (name) { if (data.get(name)) { inputs[name] = data.get(name); } });
    data.forEach(function (value, name) {
      if (name.indexOf("dpc_") === 0 && value && value !== "0") {
        inputs.dpc_adjustments.push({factor: name.slice(4), steps: Number(value)});
      }
    });
    return {data_categories: data.getAll("data_categories"), malicious: data.get("malicious") || null, severity_inputs: inputs};
  }

  function element(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined) { node.textContent = text; }
    if (className) { node.className = className; }
    return node;
  }

  function messages(body) {
    var found = [];
    (function walk(value) {
      if (typeof value === "string") { found.push(value); }
      else if (Array.isArray(value)) { value.forEach(walk); }
      else if (value && typeof value === "object") { Object.keys(value).forEach(function (key) { walk(value[key]); }); }
    })(body);
    return found;
  }

  function show(status, body) {
    out.textContent = "";
    if (status !== 200) {
      var note = element("p", "", "muted");
      note.id = "severity-note";
      var text = messages(body).join(" ");
      note.textContent = /data_categories|at least one|ease_of_identification/.test(text)
        ? "Tick the data categories and choose the ease of identification."
        : text || "The severity cannot be computed from these inputs.";
      out.appendChild(note);
      return;
    }
    var head = element("div", undefined, "severity-score");
    var score = element("span", body.score);
    score.id = "severity-score";
    var band = element("span", labels[body.band] || body.band, "band band-" + body.band);
    band.id = "severity-band";
    head.appendChild(score);
    head.appendChild(document.createTextNode(" "));
    head.appendChild(band);
    out.appendChild(head);
    var formula = element("p", "SE = DPC " + body.dpc + " × EI " + body.ease_of_identification + " + CB " + body.circumstances, "muted");
    formula.id = "severity-formula";
    out.appendChild(formula);
    var list = element("ul", undefined, "severity-reasons");
    list.id = "severity-reasons";
    body.reasons.forEach(function (reason) { list.appendChild(element("li", reason)); });
    out.appendChild(list);
  }

  function update() {
    var mine = ++sequence;
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": token},
      body: JSON.stringify(payload())
    }).then(function (response) {
      return response.json().then(function (body) { return [response.status, body]; });
    }).then(function (result) {
      if (mine === sequence) { show(result[0], result[1]); }
    }).catch(function () {
      if (mine === sequence) { out.textContent = "The severity could not be computed just now; submit the form to see it."; }
    });
  }

  function soon() {
    window.clearTimeout(timer);
    timer = window.setTimeout(update, 200);
  }

  form.addEventListener("change", soon);
  form.addEventListener("input", soon);
  update();
})();
