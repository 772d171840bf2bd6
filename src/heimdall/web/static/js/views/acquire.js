// "#/": the receivers with their live state, and the form that starts an acquisition.
import { api } from "../api.js";
import { badge, formValues, h, replace, toast } from "../dom.js";
import { store, subscribe } from "../store.js";

function receiverRows() {
  return store.stations.map((station) => {
    const state = store.states.get(station.id);
    const name = state ? state.state : "unknown";
    const channels =
      state && state.busy_channels != null
        ? `${state.busy_channels}${state.channels != null ? ` / ${state.channels}` : ""}`
        : "–";
    return h(
      "tr",
      { dataset: { station: station.id } },
      h("td", {}, station.name),
      h("td", {}, badge(name)),
      h("td", { class: "num" }, channels),
      h("td", { class: "muted" }, state && state.error ? state.error : ""),
    );
  });
}

function receiversCard() {
  const body = h("tbody", {}, receiverRows());
  const card = h(
    "div",
    { class: "card" },
    h("h2", {}, "Receivers"),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { id: "receivers-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "receiver"), h("th", {}, "state"),
          h("th", { class: "num" }, "busy channels"), h("th", {}, "last error"))),
        body,
      ),
    ),
  );
  const unsubscribe = subscribe(() => replace(body, receiverRows()));
  return { card, unsubscribe };
}

function acquisitionForm(navigate, report) {
  const stations = store.stations.map((s) =>
    h("label", {}, h("input", { type: "checkbox", name: "station", value: s.id, checked: true }), s.name),
  );
  const sources = [
    h("option", { value: "" }, "none"),
    ...store.sources.map((s) => h("option", { value: s.id }, `${s.name} (${s.frequency_mhz ?? "?"} MHz)`)),
  ];
  const submit = h("button", { type: "submit", id: "start-acquisition" }, "Start acquisition");
  const form = h(
    "form",
    { class: "grid", id: "acquire-form" },
    h("label", {}, "Frequency (MHz)",
      h("input", { name: "frequency_mhz", type: "number", step: "0.0001", min: "0.001", value: "145.5", required: true })),
    h("label", {}, "Duration (s)",
      h("input", { name: "duration_seconds", type: "number", step: "0.1", min: "0.1", max: "300", value: "5", required: true })),
    h("label", { class: "wide" }, "Known source", h("select", { name: "known_source_id" }, sources)),
    h("label", { class: "wide" }, "Description", h("input", { name: "description", maxlength: "1000" })),
    h("fieldset", { class: "wide" }, h("legend", {}, "Receivers"), h("div", { class: "receivers" }, stations)),
    h("div", { class: "wide actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = formValues(form);
    const selected = [...form.querySelectorAll("input[name=station]:checked")].map((i) => i.value);
    if (selected.length === 0) {
      toast("Select at least one receiver", { error: true });
      return;
    }
    const body = {
      frequency_mhz: Number(values.frequency_mhz),
      duration_seconds: Number(values.duration_seconds),
      stations: selected,
    };
    if (values.description) body.description = values.description;
    if (values.known_source_id) body.known_source_id = values.known_source_id;
    submit.disabled = true;
    try {
      const accepted = await api("/api/v1/acquisition/acquire", { method: "POST", body });
      toast(`Acquisition ${accepted.task_id.slice(0, 8)} queued`);
      navigate(`#/sessions/${accepted.task_id}`);
    } catch (error) {
      report(error);
      submit.disabled = false;
    }
  });
  return h("div", { class: "card" }, h("h2", {}, "New acquisition"), form);
}

export function acquireView({ panel, mapView, report }) {
  mapView.estimate.clear();
  mapView.fitReceivers();
  const receivers = receiversCard();
  replace(panel, acquisitionForm((hash) => (location.hash = hash), report), receivers.card);
  return receivers.unsubscribe;
}
