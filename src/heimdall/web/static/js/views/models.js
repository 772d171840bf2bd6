// "#/models": calibration models (activate a version, roll back) and training jobs.
import { api } from "../api.js";
import { badge, h, replace, toast } from "../dom.js";
import * as fmt from "../format.js";
import { poll } from "../poll.js";

const RUNNING = new Set(["PENDING", "RUNNING", "PROGRESS"]);

// A training job's held-out evaluation: median position error per method.
function metricsText(metrics) {
  const methods = metrics && metrics.held_out && metrics.held_out.methods;
  if (!methods) return "–";
  const errors = Object.entries(methods)
    .filter(([, m]) => m && m.median_error_m != null)
    .map(([name, m]) => `${name} ${fmt.metres(m.median_error_m)}`);
  if (!errors.length) return "–";
  const verdict = metrics.beats_baseline ? " (beats baseline)" : "";
  return `median error: ${errors.join(", ")}${verdict}`;
}

function modelRows(models, act) {
  return models.map((m) => h(
    "tr",
    { dataset: { model: m.id } },
    h("td", {}, `${m.name} v${m.version}`),
    h("td", {}, m.is_active ? badge("active") : ""),
    h("td", {}, fmt.time(m.created_at)),
    h("td", { class: "wrap" }, metricsText(m.metrics)),
    h("td", {}, m.is_active ? "" : h("button", { class: "secondary", onclick: () => act(`/api/v1/training/models/${m.id}/activate`, `${m.name} v${m.version} active`) }, "Activate")),
  ));
}

function jobRows(jobs) {
  return jobs.map((j) => h(
    "tr",
    { dataset: { job: j.job_id } },
    h("td", {}, fmt.time(j.created_at)),
    h("td", {}, badge(j.state)),
    h("td", { class: "num" }, `${Math.round(j.progress)} %`),
    h("td", { class: "muted" }, j.error_message || (j.model_id ? `model ${fmt.shortId(j.model_id)}` : "")),
  ));
}

function table(id, head, body) {
  return h("div", { class: "table-wrap" },
    h("table", { id }, h("thead", {}, h("tr", {}, head.map((t) => h("th", {}, t)))), body));
}

export function modelsView({ panel, mapView, report }) {
  mapView.estimate.clear();
  const models = h("tbody");
  const jobs = h("tbody");
  let stop = null;

  async function act(path, message, body) {
    try {
      await api(path, { method: "POST", body });
      toast(message);
      refresh();
    } catch (error) {
      report(error);
    }
  }

  function refresh() {
    if (stop) stop();
    stop = poll(async (signal) => {
      const [modelPage, jobPage] = await Promise.all([
        api("/api/v1/training/models?limit=50", { signal }),
        api("/api/v1/training/jobs?limit=20", { signal }),
      ]);
      replace(models, modelRows(modelPage.items, act));
      replace(jobs, jobRows(jobPage.items));
      return jobPage.items.some((j) => RUNNING.has(j.state));
    }, (running) => (running ? 1000 : null), report);
  }

  replace(
    panel,
    h("div", { class: "card" }, h("h2", {}, "Models"),
      table("models-table", ["model", "", "created", "held-out evaluation", ""], models),
      h("div", { class: "actions" },
        h("button", { class: "secondary", id: "rollback",
          onclick: () => act("/api/v1/training/models/rollback", "Rolled back") }, "Roll back to the previous version"))),
    h("div", { class: "card" }, h("h3", {}, "Training jobs"),
      h("p", { class: "muted" }, "A job fits the calibration from approved sessions of known sources."),
      h("div", { class: "actions" },
        h("button", { id: "start-job", onclick: () => act("/api/v1/training/jobs", "Training job queued", {}) }, "Start a training job")),
      table("jobs-table", ["created", "state", "progress", ""], jobs)),
  );
  refresh();
  return () => stop && stop();
}
