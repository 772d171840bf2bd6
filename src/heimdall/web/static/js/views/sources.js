// "#/sources": known transmitters (ground truth for calibration): list, add, remove.
import { api } from "../api.js";
import { formValues, h, replace, toast } from "../dom.js";
import * as fmt from "../format.js";
import { loadSources, store } from "../store.js";

const NUMBERS = ["latitude", "longitude", "altitude_m", "frequency_mhz", "eirp_dbm"];

function sourceRows(refresh, report) {
  return store.sources.map((s) => h(
    "tr",
    { dataset: { source: s.id } },
    h("td", {}, s.name),
    h("td", {}, fmt.position(s.latitude, s.longitude)),
    h("td", { class: "num" }, s.frequency_mhz == null ? "–" : s.frequency_mhz.toFixed(4)),
    h("td", { class: "num" }, fmt.number(s.eirp_dbm, 1)),
    h("td", {}, h("button", { class: "secondary", onclick: async () => {
      if (!confirm(`Remove known source ${s.name}?`)) return;
      try {
        await api(`/api/v1/training/known-sources/${s.id}`, { method: "DELETE" });
        toast(`${s.name} removed`);
        refresh();
      } catch (error) {
        report(error);
      }
    } }, "Remove")),
  ));
}

function createForm(refresh, report) {
  const field = (name, label, attrs = {}) => h("label", {}, label, h("input", { name, ...attrs }));
  const form = h(
    "form",
    { class: "grid", id: "source-form" },
    field("name", "Name", { required: true, maxlength: "200" }),
    field("frequency_mhz", "Frequency (MHz)", { type: "number", step: "any", min: "0", required: true }),
    field("latitude", "Latitude (°)", { type: "number", step: "any", min: "-90", max: "90", required: true }),
    field("longitude", "Longitude (°)", { type: "number", step: "any", min: "-180", max: "180", required: true }),
    field("altitude_m", "Altitude (m)", { type: "number", step: "any" }),
    field("eirp_dbm", "EIRP (dBm)", { type: "number", step: "any" }),
    h("label", { class: "wide" }, "Description", h("input", { name: "description", maxlength: "2000" })),
    h("div", { class: "wide actions" }, h("button", { type: "submit" }, "Add known source")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = formValues(form);
    for (const key of NUMBERS) if (key in body) body[key] = Number(body[key]);
    try {
      await api("/api/v1/training/known-sources", { method: "POST", body });
      toast(`${body.name} added`);
      form.reset();
      refresh();
    } catch (error) {
      report(error);
    }
  });
  return form;
}

export function sourcesView({ panel, mapView, report }) {
  const body = h("tbody");
  const refresh = async () => {
    try {
      await loadSources();
      replace(body, sourceRows(refresh, report));
      mapView.estimate.showSources(store.sources);
    } catch (error) {
      report(error);
    }
  };
  const head = h("tr", {}, ["name", "position", "MHz", "EIRP dBm", ""].map((t) => h("th", {}, t)));
  replace(
    panel,
    h("div", { class: "card" }, h("h2", {}, "Known sources"),
      h("div", { class: "table-wrap" }, h("table", { id: "sources-table" }, h("thead", {}, head), body))),
    h("div", { class: "card" }, h("h3", {}, "Add a known source"), createForm(refresh, report)),
  );
  refresh();
  return () => mapView.estimate.clear();
}
