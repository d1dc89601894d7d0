// minigpt explore: the page. It starts one traced run on the server (POST /api/start) and
// reveals that run's trace a step at a time, asking for each step as it needs it
// (POST /api/steps answers as soon as the decoder has recorded it, the run going on meanwhile).
// It never decides a token itself: every bar, node and round is a record of the decoder's
// trace (decoding/results.py says what each field means).
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const BARS_SHOWN = 12; // candidates drawn per row (the trace holds 20)
const RUN_DELAY_MS = 150; // Run reveals a step this often, so the search can be watched
const MAX_PANELS = 2;

let TABLE = null; // GET /api/strategies: the strategy table as the server has it now
const panels = [];

// ------------------------------------------------------------------------------ little helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function pct(p) {
  if (p === null || p === undefined) return "–";
  return p >= 0.001 || p === 0 ? `${(100 * p).toFixed(1)}%` : `${(100 * p).toPrecision(1)}%`;
}

function fixed(x, digits = 2) {
  return x === null || x === undefined ? "–inf" : Number(x).toFixed(digits);
}

function newRunId() {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  };
  const response = await fetch(path, init);
  const data = await response.json();
  if (!response.ok) {
    const error = new Error(data.error);
    error.option = data.option;
    error.status = response.status;
    throw error;
  }
  return data;
}

// What kind of trace a run answered with, and what one Step reveals of it.
function traceKind(trace) {
  if (Array.isArray(trace.nodes)) return "tree"; // the seed post's exhaustive tree
  if (trace.rounds && trace.rounds.length) return "rounds"; // assisted decoding
  if (trace.steps.some((s) => s.candidates.length)) return "beam";
  return "steps";
}

function unitCount(kind, trace) {
  if (kind === "tree") return Math.max(0, ...trace.nodes.map((n) => n.depth));
  if (kind === "rounds") return trace.rounds.length;
  return trace.steps.length;
}

const UNIT_NAME = { tree: "level", rounds: "round", beam: "step", steps: "step" };

// A /api/steps answer's trace holds only the steps (and rounds) after the first answer.since
// ones, which the page has already: put them after those, and keep every token's text.
function joined(old, answer) {
  if (!old || !Array.isArray(answer.trace.steps)) return answer;
  const { steps, rounds } = answer.since;
  answer.trace.steps = old.trace.steps.slice(0, steps).concat(answer.trace.steps);
  answer.trace.rounds = (old.trace.rounds || []).slice(0, rounds).concat(answer.trace.rounds || []);
  answer.token_text = { ...old.token_text, ...answer.token_text };
  return answer;
}

// ------------------------------------------------------------------------------------ a panel

class Panel {
  constructor(strategyName, closable) {
    this.answer = null; // the server's latest answer for the run: the steps so far, or all (done)
    this.shown = 0; // how many steps (levels, rounds) of it are revealed
    this.playing = false;
    this.runId = null; // the run on the server for the request as it stands
    this.root = el("section", { class: "panel" });
    this.build(strategyName, closable);
  }

  build(strategyName, closable) {
    this.strategy = el("select", { class: "strategy", "aria-label": "strategy" });
    for (const s of TABLE.strategies) {
      this.strategy.append(el("option", { value: s.name, text: s.label ? `${s.name} (${s.label})` : s.name }));
    }
    this.strategy.value = strategyName;
    this.strategy.addEventListener("change", () => { this.buildOptions(); this.invalidate(); });
    this.maxNew = el("input", { class: "opt max-new-tokens", type: "number", min: "1",
      max: String(TABLE.max_new_tokens_limit), "data-name": "max_new_tokens" });
    this.maxNew.addEventListener("input", () => this.invalidate());
    this.eos = el("input", { class: "opt eos-token-id", type: "text", "data-name": "eos_token_id",
      placeholder: String(TABLE.eos_token_id) });
    this.eos.addEventListener("input", () => this.invalidate());
    this.options = el("div", { class: "options" });
    const button = (cls, text, title) => el("button", { class: cls, type: "button", text, title });
    this.stepButton = button("step", "Step", "reveal one more step (one token, one beam step, one round)");
    this.runButton = button("run", "Run", "reveal every step, one after the other");
    this.resetButton = button("reset", "Reset", "back to the prompt");
    this.redrawButton = button("redraw", "Re-draw", "sample again with a fresh seed");
    this.cancelButton = button("cancel", "Cancel", "stop the run the server is computing");
    this.cancelButton.disabled = true;
    this.stepButton.addEventListener("click", () => this.step());
    this.runButton.addEventListener("click", () => this.run());
    this.resetButton.addEventListener("click", () => { this.playing = false; this.shown = 0; this.draw(); });
    this.redrawButton.addEventListener("click", () => this.redraw());
    this.cancelButton.addEventListener("click", () => this.cancel());
    const buttons = el("div", { class: "buttons" }, this.stepButton, this.runButton,
      this.resetButton, this.redrawButton, this.cancelButton);
    if (closable) {
      const close = button("close", "×", "close this panel");
      close.addEventListener("click", () => removePanel(this));
      buttons.append(close);
    }
    this.status = el("p", { class: "status" });
    this.notes = el("p", { class: "notes" });
    this.text = el("div", { class: "text" });
    this.bars = el("div", { class: "bars" });
    this.tree = el("div", { class: "tree" });
    this.rounds = el("div", { class: "rounds" });
    this.result = el("div", { class: "result" });
    this.root.append(
      el("div", { class: "controls" },
        el("label", {}, "Strategy ", this.strategy),
        el("label", { title: "generate at most N tokens" }, "max_new_tokens ", this.maxNew),
        el("label", { title: "stop once this token is generated; none = never (default: the model's EOS)" },
          "eos_token_id ", this.eos),
        this.options, buttons),
      this.status, this.notes, this.text, this.rounds, this.tree, this.bars, this.result);
    this.buildOptions();
    this.draw();
  }

  get spec() {
    return TABLE.strategies.find((s) => s.name === this.strategy.value);
  }

  buildOptions() {
    // One field per option of the strategy's table entry: HF's name, the default as a hint.
    this.options.replaceChildren();
    const spec = this.spec;
    this.maxNew.placeholder = String(spec.max_new_tokens);
    for (const option of spec.options) {
      let field;
      if (option.kind === "choice") {
        field = el("select", {});
        field.append(el("option", { value: "", text: `default (${option.default ?? "off"})` }));
        for (const choice of option.choices) field.append(el("option", { value: choice, text: choice }));
      } else if (option.kind === "flag") {
        field = el("input", { type: "checkbox" }); // the flag given (checked) or not
      } else if (option.kind === "list") {
        // The flag repeated: one value per line (a stop string may hold spaces or commas).
        field = el("textarea", { rows: "1", placeholder: "off (one per line)" });
      } else {
        field = el("input", { type: option.kind === "text" ? "text" : "number",
          step: option.kind === "float" ? "any" : "1",
          placeholder: option.default === null ? "off" : String(option.default) });
      }
      field.classList.add("opt");
      field.dataset.name = option.name;
      field.addEventListener("input", () => this.invalidate());
      field.addEventListener("change", () => this.invalidate());
      const help = `${option.flag}: ${option.help}` + (option.limit ? ` (at most ${option.limit} here)` : "");
      this.options.append(el("label", { title: help }, `${option.name} `, field));
    }
    this.redrawButton.hidden = !spec.options.some((o) => o.name === "seed");
  }

  field(name) {
    return this.root.querySelector(`.opt[data-name="${name}"]`);
  }

  request() {
    // The fields as typed: the server parses them as the same flags would be.
    const options = {};
    for (const field of this.options.querySelectorAll(".opt")) {
      if (field.type === "checkbox") {
        if (field.checked) options[field.dataset.name] = true;
      } else if (field.tagName === "TEXTAREA") {
        const lines = field.value.split("\n").filter((line) => line !== "");
        if (lines.length) options[field.dataset.name] = lines;
      } else if (field.value.trim() !== "") options[field.dataset.name] = field.value.trim();
    }
    const body = { strategy: this.strategy.value, prompt: document.getElementById("prompt").value, options };
    const n = this.maxNew.value.trim();
    if (n !== "") body.max_new_tokens = /^\d+$/.test(n) ? Number(n) : n;
    const eos = this.eos.value.trim();
    if (eos.toLowerCase() === "none") body.eos_token_id = null;
    else if (eos !== "") body.eos_token_id = /^\d+$/.test(eos) ? Number(eos) : eos;
    return body;
  }

  invalidate() {
    this.playing = false;
    // The run for the old request is of no use now: stop it, so it does not hold the turn.
    if (this.runId && !(this.answer && this.answer.done)) {
      api("/api/cancel", { run_id: this.runId }).catch(() => {});
    }
    this.runId = null;
    this.answer = null;
    this.shown = 0;
    for (const field of this.root.querySelectorAll(".bad")) field.classList.remove("bad");
    this.draw();
  }

  // ------------------------------------------------------------------------- the buttons

  // Make sure the answer holds `upto` steps (null: the whole run), starting the run on the
  // server if there is none and waiting for its steps if it has not recorded them yet.
  async ensure(upto) {
    const a = this.answer;
    if (a && (a.done || (upto !== null && this.units >= upto))) return true;
    if (!this.runId) this.runId = newRunId();
    const runId = this.runId;
    this.setBusy(true);
    if (!a) {
      this.status.className = "status";
      this.status.textContent = "running…";
    }
    try {
      if (!a) await api("/api/start", { ...this.request(), run_id: runId });
      if (runId !== this.runId) return false; // the request changed meanwhile
      // Only the steps after those held come back: a long run's trace runs to megabytes.
      const since = a ? { steps: a.trace.steps.length, rounds: (a.trace.rounds || []).length } : null;
      const answer = await api("/api/steps", { run_id: runId, upto, since });
      if (runId !== this.runId) return false;
      this.answer = joined(a, answer);
      this.kind = traceKind(answer.trace);
      this.units = unitCount(this.kind, answer.trace);
      return true;
    } catch (error) {
      if (runId !== this.runId) return false; // an old run's answer (cancelled as replaced)
      this.runId = null; // the next Step starts afresh
      this.answer = null;
      this.shown = 0;
      this.showError(error);
      return false;
    } finally {
      this.setBusy(false);
    }
  }

  setBusy(busy) {
    this.busy = busy;
    this.cancelButton.disabled = !busy;
    for (const b of [this.stepButton, this.runButton, this.redrawButton]) b.disabled = busy;
  }

  async step() {
    if (this.busy) return;
    this.playing = false;
    if (!(await this.ensure(this.shown + 1))) { this.draw(); return; }
    if (this.shown < this.units) this.shown += 1;
    this.draw();
  }

  async run() {
    if (this.busy) return;
    if (this.playing) { // a second Run: straight to the end
      this.playing = false;
      if (await this.ensure(null)) this.shown = this.units;
      this.draw();
      return;
    }
    // Each step as soon as the server has it, but no faster than one per RUN_DELAY_MS.
    this.playing = true;
    while (this.playing && (await this.ensure(this.shown + 1)) && this.playing && this.shown < this.units) {
      this.shown += 1;
      this.draw();
      await sleep(RUN_DELAY_MS);
    }
    this.playing = false;
    this.draw();
  }

  async redraw() {
    const seed = this.field("seed");
    const want = Math.max(this.shown, 1);
    if (seed) seed.value = "";
    this.invalidate();
    if (await this.ensure(want)) this.shown = Math.min(want, this.units);
    this.draw();
  }

  async cancel() {
    if (this.runId) await api("/api/cancel", { run_id: this.runId });
  }

  showError(error) {
    this.status.className = "status error";
    this.status.textContent = error.status === 409 ? "cancelled" : `error: ${error.message}`;
    const bad = error.option && this.field(error.option);
    if (bad) bad.classList.add("bad");
  }

  // -------------------------------------------------------------------------- drawing

  get finished() { // the whole run is in, and all of it is shown
    return Boolean(this.answer && this.answer.done) && this.shown === this.units;
  }

  draw() {
    const done = this.finished;
    this.stepButton.disabled = this.runButton.disabled = Boolean(this.busy) || done;
    this.root.dataset.shown = String(this.shown);
    this.root.dataset.units = this.answer ? String(this.units) : "";
    this.root.dataset.done = String(done);
    for (const part of [this.text, this.bars, this.tree, this.rounds, this.result, this.notes]) part.replaceChildren();
    if (!this.answer) {
      if (!this.busy && !this.status.classList.contains("error")) {
        this.status.className = "status";
        this.status.textContent = "Step or Run to decode the prompt.";
      }
      return;
    }
    const a = this.answer;
    this.drawStatus();
    if (a.notes.length) this.notes.textContent = a.notes.join(" · ");
    if (this.kind === "tree") this.drawExhaustive();
    else if (this.kind === "rounds") this.drawRounds();
    else {
      this.drawSequences();
      if (this.kind === "beam") this.drawBeamTree();
      if (this.shown > 0) this.drawBars(a.trace.steps[this.shown - 1]);
    }
    if (done) this.drawResult();
  }

  drawStatus() {
    const a = this.answer;
    const of = a.done ? `of ${this.units}` : `of ${this.units} so far (still running)`;
    const parts = [`${a.strategy}: ${UNIT_NAME[this.kind]} ${this.shown} ${of}`];
    if (this.finished && a.trace.stop_reason) parts.push(`stopped: ${a.trace.stop_reason}`);
    if (a.request.options.seed !== undefined) {
      parts.push(`seed ${a.request.options.seed}`);
      const seed = this.field("seed");
      if (seed) seed.placeholder = String(a.request.options.seed);
    }
    this.status.className = "status";
    this.status.textContent = parts.join(" · ");
  }

  tokenText(id) {
    const text = this.answer.token_text[String(id)] ?? `#${id}`;
    return text.replace(/\n/g, "↵");
  }

  sequenceLine(ids, promptLength, attrs = {}, suffix = "") {
    // The prompt as one grey run of text, then each generated token as its own span.
    const line = el("div", { class: "seq", ...attrs });
    const promptText = ids.slice(0, promptLength).map((t) => this.answer.token_text[String(t)] ?? "").join("");
    line.append(el("span", { class: "prompt-text", text: promptText }));
    for (const id of ids.slice(promptLength)) {
      line.append(el("span", { class: "tok", "data-id": String(id), text: this.tokenText(id), title: `token ${id}` }));
    }
    if (suffix) line.append(el("span", { class: "seq-score", text: suffix }));
    return line;
  }

  drawSequences() {
    const a = this.answer;
    const promptLength = a.prompt_ids.length;
    if (this.shown === 0) {
      this.text.append(this.sequenceLine(a.prompt_ids, promptLength, { "data-index": "0" }));
      return;
    }
    const step = a.trace.steps[this.shown - 1];
    if (this.kind === "beam") {
      this.text.append(el("div", { class: "caption", text: `live beams after step ${step.number}` }));
      step.beams.forEach((b, i) => this.text.append(
        this.sequenceLine(b.ids, promptLength, { "data-beam": String(i), class: "seq live" }, `score ${fixed(b.score)}`)));
      if (step.finished.length) {
        this.text.append(el("div", { class: "caption", text: "finished pool (best first)" }));
        for (const h of step.finished) {
          this.text.append(this.sequenceLine(h.ids, promptLength, { class: "seq finished" }, `score ${fixed(h.score, 3)}`));
        }
      }
      return;
    }
    const latest = new Map(); // sample index -> its sequence after its last revealed step
    for (const s of a.trace.steps.slice(0, this.shown)) {
      for (const row of s.rows) latest.set(row.index, row.sequence.concat(row.chosen));
    }
    for (const [index, ids] of [...latest.entries()].sort((x, y) => x[0] - y[0])) {
      this.text.append(this.sequenceLine(ids, promptLength, { "data-index": String(index) }));
    }
  }

  drawBars(step) {
    this.bars.append(el("div", { class: "caption", text:
      `step ${step.number}: light bar = the model's probability, dark bar = what the decoder chose from ` +
      "(after processors, and warpers when sampling); red dashed line = a warper's cutoff" }));
    const wrap = el("div", { class: "bar-charts" });
    for (const row of step.rows) wrap.append(this.barChart(step, row));
    this.bars.append(wrap);
  }

  barChart(step, row) {
    // A warper that kept the whole vocabulary (temperature) cut nothing: no line, a note.
    const cuts = row.cuts.filter((cut) => cut.kept < TABLE.vocab_size);
    const shown = row.candidates.slice(0, BARS_SHOWN);
    for (const c of row.candidates.slice(BARS_SHOWN)) if (row.chosen.includes(c.token)) shown.push(c);
    const labelW = 96, barW = 190, numW = 118, cutW = cuts.length ? 130 : 0, rowH = 17, top = 20;
    const height = top + rowH * shown.length + 8 + 12 * cuts.length;
    const chart = svgEl("svg", { class: "bar-chart", width: labelW + barW + numW + cutW, height,
      "data-step": String(step.number), "data-row": String(row.index) });
    const who = this.kind === "beam" ? `beam ${row.index}` : step.rows.length > 1 ? `sample ${row.index}` : "";
    const last = row.sequence.slice(-3).map((t) => this.tokenText(t)).join("");
    // Scaled to the largest bar, so that a flat distribution's bars are still seen apart.
    const full = Math.max(1e-9, ...shown.map((c) => Math.max(c.prob, c.model_prob)));
    const scale = barW / full;
    chart.append(svgEl("text", { x: 2, y: 13, class: "chart-title" },
      `${who ? who + " · " : ""}after “…${last}” (full bar = ${pct(full)})`));
    shown.forEach((c, i) => {
      const y = top + i * rowH;
      const chosen = row.chosen.includes(c.token);
      const g = svgEl("g", { class: chosen ? "bar chosen" : "bar", "data-token": String(c.token) });
      g.append(svgEl("text", { x: labelW - 6, y: y + 11, "text-anchor": "end", class: "tok-label" },
        this.tokenText(c.token)));
      g.append(svgEl("rect", { x: labelW, y: y + 1, width: Math.max(0.5, c.model_prob * scale), height: 6, class: "model-bar" }));
      if (c.prob > 0) g.append(svgEl("rect", { x: labelW, y: y + 8, width: Math.max(0.5, c.prob * scale), height: 6, class: "prob-bar" }));
      const same = Math.abs(c.prob - c.model_prob) < 5e-4;
      g.append(svgEl("text", { x: labelW + barW + 6, y: y + 11, class: "num" },
        (same ? pct(c.model_prob) : `${pct(c.model_prob)} → ${pct(c.prob)}`) + (chosen ? " ◀" : "")));
      chart.append(g);
    });
    // Each warper kept its `kept` most likely tokens: its line goes under that many bars.
    cuts.forEach((cut, j) => {
      const label = `${cut.name}=${cut.param}: ${cut.kept} kept`;
      if (cut.kept < shown.length) {
        const y = top + cut.kept * rowH - 1;
        chart.append(svgEl("line", { x1: 0, x2: labelW + barW + numW + cutW, y1: y, y2: y, class: "cutoff" }));
        chart.append(svgEl("text", { x: labelW + barW + numW + 2, y: y - 3 - 11 * j, class: "cut-label" }, label));
      } else {
        const y = top + rowH * shown.length + 10 + 12 * j;
        chart.append(svgEl("text", { x: 2, y, class: "cut-label" }, `${label} (below the bars shown)`));
      }
    });
    const whole = row.cuts.filter((cut) => cut.kept >= TABLE.vocab_size);
    if (whole.length) {
      chart.setAttribute("height", height + 14);
      chart.append(svgEl("text", { x: 2, y: height + 8, class: "num" },
        whole.map((cut) => `${cut.name}=${cut.param}: reshapes, keeps every token`).join("; ")));
    }
    return chart;
  }

  // ------------------------------------------------------------------------- trees

  drawBeamTree() {
    const a = this.answer;
    const steps = a.trace.steps.slice(0, this.shown);
    const nodes = [];
    for (const step of steps) {
      for (const c of step.candidates) {
        const parent = step.rows[c.beam].sequence;
        nodes.push({ key: parent.concat([c.token]).join(","), parent: parent.join(","), depth: step.number,
          line1: this.tokenText(c.token), line2: fixed(c.score), cls: `fate-${c.fate.replace(/[^a-z]+/g, "-")}`,
          title: `${c.fate}; cumulative log-prob ${fixed(c.score, 4)}` });
      }
    }
    const pool = steps.length ? steps[steps.length - 1].finished : [];
    const best = pool.length ? pool[0].ids : [];
    const marks = [];
    const stops = a.early_stopping_steps || {};
    for (const [mode, at] of Object.entries(stops)) {
      if (at !== null && at <= this.shown) marks.push({ depth: at, text: `early_stopping=${mode} stops after step ${at}` });
    }
    // A mode not stopped yet has no mark; only a finished run says it would go on past its end.
    const beyond = a.done ? Object.entries(stops).filter(([, at]) => at === null).map(([mode]) => mode) : [];
    this.tree.append(el("div", { class: "caption", text:
      "beam tree: every candidate ranked at each step; blue = live beam, double border = entered the " +
      "finished pool, grey = pruned (spare, not kept, or finished too late); bold = the pool's best so far; " +
      `this run: early_stopping=${a.request.options.early_stopping}` +
      (beyond.length ? `; early_stopping=${beyond.join(" or ")} would go on past this run's end` : "") }));
    this.tree.append(drawTree(a.prompt_ids.join(","), this.promptLabel(), nodes, best.join(","), marks));
  }

  drawExhaustive() {
    const a = this.answer;
    const all = a.trace.nodes;
    const nodes = [];
    all.forEach((n, i) => {
      if (i === 0 || n.depth > this.shown) return;
      const leaf = n.children.length === 0;
      nodes.push({ key: String(i), parent: String(n.parent), depth: n.depth, line1: this.tokenText(n.token),
        line2: leaf && n.depth === this.units ? `${pct(n.prob)} · ${fixed(n.score)}` : pct(n.prob),
        cls: "fate-live", title: `p ${pct(n.prob)}; post score ${fixed(n.score, 4)}` });
    });
    let bestKey = "";
    if (this.shown === this.units) {
      const bestIds = a.sequences[0].ids.join(",");
      const index = all.findIndex((n) => n.ids.join(",") === bestIds);
      bestKey = index < 0 ? "" : String(index);
    }
    this.text.append(el("div", { class: "caption", text:
      `the seed post's top-b tree: level ${this.shown} of ${this.units}; ${a.trace.expansions} expansions in all` }));
    this.tree.append(el("div", { class: "caption", text:
      "every node expanded into its b most likely children; leaves show p and the post's score " +
      "(log-prob / all tokens); bold = the best leaf" }));
    // Best path: the keys of the best leaf's ancestors.
    const onBest = new Set();
    for (let k = bestKey; k !== "" && k !== "null"; k = String(all[Number(k)].parent)) onBest.add(k);
    this.tree.append(drawTree("0", this.promptLabel(), nodes, onBest, []));
  }

  promptLabel() {
    const ids = this.answer.prompt_ids;
    const text = ids.map((t) => this.answer.token_text[String(t)] ?? "").join("");
    return text.length > 12 ? `…${text.slice(-11)}` : text;
  }

  // ------------------------------------------------------------------------ assisted rounds

  drawRounds() {
    const a = this.answer;
    const rounds = a.trace.rounds.slice(0, this.shown);
    const promptLength = a.prompt_ids.length;
    const latest = new Map();
    for (const r of rounds) latest.set(r.index, r.sequence_before.concat(r.emitted));
    if (!rounds.length) latest.set(0, a.prompt_ids);
    for (const [index, ids] of [...latest.entries()].sort((x, y) => x[0] - y[0])) {
      this.text.append(this.sequenceLine(ids, promptLength, { "data-index": String(index) }));
    }
    this.rounds.append(el("div", { class: "caption", text:
      "each round: the drafter guesses, the model checks every guess in one call; green = accepted, " +
      "red = rejected, grey = never checked, blue = the model's own token" }));
    rounds.forEach((r, i) => this.rounds.append(this.roundRow(r, i === rounds.length - 1)));
  }

  roundRow(r, latest) {
    const row = el("div", { class: latest ? "round latest" : "round", "data-round": String(r.number) });
    row.append(el("span", { class: "round-name", text: `round ${r.number}${r.index ? ` #${r.index}` : ""}` }));
    for (const d of r.drafted) {
      const cls = { accepted: "accepted", rejected: "rejected" }[d.outcome] || "unchecked";
      row.append(el("span", { class: `chip ${cls}`, text: this.tokenText(d.token),
        title: `${d.outcome}: q ${pct(d.q)}, p ${pct(d.p)}` + (d.uniform === null ? "" : `, uniform ${fixed(d.uniform, 3)}`) }));
    }
    if (r.bonus) row.append(el("span", { class: "chip bonus", text: this.tokenText(r.bonus.token), title: `the model's own token, ${pct(r.bonus.prob)}` }));
    if (!latest) return row;
    const checked = r.drafted.filter((d) => d.p !== null);
    if (checked.length) {
      row.append(this.pqChart(checked.map((d) => ({ token: d.token, p: d.p, q: d.q, outcome: d.outcome,
        uniform: d.uniform, ratio: d.ratio })), "drafted tokens"));
    }
    if (r.residual_top.length) {
      row.append(this.pqChart(r.residual_top.map((t) => ({ token: t.token, p: t.p, q: t.q, residual: t.prob })),
        "after the rejection: the model's token is drawn from max(0, p − q), normalised"));
    }
    return row;
  }

  pqChart(items, title) {
    // Three bars a token: the model's p, the drafter's q, and max(0, p - q) (or the residual).
    const labelW = 96, barW = 170, numW = 390, rowH = 24, top = 18;
    // Scaled to the largest number drawn, so that small p and q stay visible side by side.
    const scale = barW / Math.max(1e-9, ...items.flatMap((it) => [it.p, it.q, it.residual ?? 0]));
    const chart = svgEl("svg", { class: "pq-chart", width: labelW + barW + numW, height: top + rowH * items.length + 4 });
    chart.append(svgEl("text", { x: 2, y: 12, class: "chart-title" }, `${title}: p (model), q (drafter), max(0, p − q); bars scaled to the largest`));
    items.forEach((it, i) => {
      const y = top + i * rowH;
      const excess = it.residual ?? Math.max(0, it.p - it.q);
      chart.append(svgEl("text", { x: labelW - 6, y: y + 13, "text-anchor": "end", class: `tok-label ${it.outcome || ""}` }, this.tokenText(it.token)));
      [["p-bar", it.p], ["q-bar", it.q], ["excess-bar", excess]].forEach(([cls, v], j) => {
        chart.append(svgEl("rect", { x: labelW, y: y + 1 + 7 * j, width: Math.max(0.5, v * scale), height: 6, class: cls }));
      });
      const extra = it.residual !== undefined ? `residual ${pct(it.residual)}`
        : `${it.outcome}${it.uniform === null ? "" : ` (uniform ${fixed(it.uniform, 3)} vs min(1, p/q) = ${fixed(Math.min(1, it.ratio), 3)})`}`;
      chart.append(svgEl("text", { x: labelW + barW + 6, y: y + 13, class: "num" }, `p ${pct(it.p)} q ${pct(it.q)} · ${extra}`));
    });
    return chart;
  }

  drawResult() {
    const a = this.answer;
    const box = el("div", { class: "final" });
    box.append(el("div", { class: "caption", text: "the result, as minigpt generate --json prints it" }));
    a.sequences.forEach((s, i) => {
      const numbers = [s.score === null ? null : `score ${fixed(s.score, 3)}`, `logprob ${fixed(s.logprob, 3)}`, s.finish_reason];
      const line = this.sequenceLine(s.ids, a.prompt_ids.length, { class: "seq final-seq", "data-sequence": String(i) },
        numbers.filter(Boolean).join(" · "));
      box.append(line);
    });
    if (a.assistant) {
      box.append(el("div", { class: "caption", text:
        `assistant: ${a.assistant.rounds} rounds, ${a.assistant.accepted} of ${a.assistant.drafted} drafted tokens accepted` }));
    }
    this.result.append(box);
  }
}

// -------------------------------------------------------------- a tree, laid out left to right

function drawTree(rootKey, rootLabel, nodes, best, marks) {
  // nodes: {key, parent, depth, line1, line2, cls, title}. A node's children are stacked below
  // each other in the order they came; a parent sits level with the middle of its children.
  const colW = 96, rowH = 33, nodeW = 86, nodeH = 28, top = 28, left = 8;
  const children = new Map([[rootKey, []]]);
  for (const n of nodes) {
    if (!children.has(n.parent)) children.set(n.parent, []);
    children.get(n.parent).push(n);
    if (!children.has(n.key)) children.set(n.key, []);
  }
  const y = new Map();
  let nextRow = 0;
  const place = (key) => {
    const kids = children.get(key) || [];
    if (!kids.length) { y.set(key, nextRow++); return; }
    for (const kid of kids) place(kid.key);
    y.set(key, (y.get(kids[0].key) + y.get(kids[kids.length - 1].key)) / 2);
  };
  place(rootKey);
  const depth = Math.max(0, ...nodes.map((n) => n.depth));
  const width = left + (depth + 1) * colW + 40;
  const height = top + Math.max(1, nextRow) * rowH + 10;
  const svg = svgEl("svg", { class: "tree-svg", width, height });
  const at = (key, d) => ({ x: left + d * colW, y: top + y.get(key) * rowH });
  const onBest = (key) => (best instanceof Set ? best.has(key) : best && best.startsWith(key) && (best.length === key.length || best[key.length] === ","));
  for (let d = 1; d <= depth; d++) {
    svg.append(svgEl("text", { x: left + d * colW + nodeW / 2, y: 12, "text-anchor": "middle", class: "col-label" }, `step ${d}`));
  }
  const depthOf = new Map([[rootKey, 0], ...nodes.map((n) => [n.key, n.depth])]);
  for (const n of nodes) {
    const from = at(n.parent, depthOf.get(n.parent)), to = at(n.key, n.depth);
    const x1 = from.x + nodeW, y1 = from.y + nodeH / 2, x2 = to.x, y2 = to.y + nodeH / 2;
    const bold = onBest(n.key) ? " best" : "";
    svg.append(svgEl("path", { d: `M${x1},${y1} C${(x1 + x2) / 2},${y1} ${(x1 + x2) / 2},${y2} ${x2},${y2}`,
      class: `edge ${n.cls}${bold}` }));
  }
  const root = at(rootKey, 0);
  const g0 = svgEl("g", { class: "tree-root" });
  g0.append(svgEl("rect", { x: root.x, y: root.y, width: nodeW, height: nodeH, rx: 4 }));
  g0.append(svgEl("text", { x: root.x + 4, y: root.y + 19, class: "node-text" }, rootLabel));
  svg.append(g0);
  for (const n of nodes) {
    const p = at(n.key, n.depth);
    const g = svgEl("g", { class: `tree-node ${n.cls}${onBest(n.key) ? " best" : ""}`, "data-depth": String(n.depth) });
    g.append(svgEl("title", {}, n.title));
    g.append(svgEl("rect", { x: p.x, y: p.y, width: nodeW, height: nodeH, rx: 4, class: "node-box" }));
    if (n.cls === "fate-finished") g.append(svgEl("rect", { x: p.x + 2.5, y: p.y + 2.5, width: nodeW - 5, height: nodeH - 5, rx: 3, class: "inner-box" }));
    g.append(svgEl("text", { x: p.x + 5, y: p.y + 13, class: "node-text" }, n.line1.length > 11 ? n.line1.slice(0, 10) + "…" : n.line1));
    g.append(svgEl("text", { x: p.x + 5, y: p.y + 24, class: "node-num" }, n.line2));
    svg.append(g);
  }
  marks.forEach((m, i) => {
    const x = left + m.depth * colW + nodeW + 4;
    svg.append(svgEl("line", { x1: x, x2: x, y1: 16, y2: height, class: "stop-mark" }));
    svg.append(svgEl("text", { x: x + 3, y: 24 + 11 * i, class: "stop-label" }, m.text));
  });
  return svg;
}

// ------------------------------------------------------------------------------ the page

function addPanel(strategyName) {
  const panel = new Panel(strategyName, panels.length > 0);
  panels.push(panel);
  document.getElementById("panels").append(panel.root);
  document.getElementById("compare").disabled = panels.length >= MAX_PANELS;
  return panel;
}

function removePanel(panel) {
  panels.splice(panels.indexOf(panel), 1);
  panel.root.remove();
  document.getElementById("compare").disabled = panels.length >= MAX_PANELS;
}

async function start() {
  TABLE = await api("/api/strategies");
  const model = document.getElementById("model");
  model.textContent = `model: ${TABLE.model.split("/").filter(Boolean).pop()}`;
  model.title = TABLE.model;
  document.getElementById("prompt").addEventListener("input", () => panels.forEach((p) => p.invalidate()));
  document.getElementById("compare").addEventListener("click", () => {
    const other = TABLE.strategies.find((s) => s.name === "beam") || TABLE.strategies[0];
    addPanel(other.name);
  });
  addPanel(TABLE.strategies[0].name);
  document.body.dataset.ready = "true";
}

start().catch((error) => {
  document.getElementById("model").textContent = `could not reach the server: ${error.message}`;
});
