// Heimdall's operator page: map on one side, the open view on the other.
import { api, getToken, setToken } from "./api.js";
import { toast } from "./dom.js";
import { createMapView } from "./map/map.js";
import { route, start } from "./router.js";
import { loadSources, loadStations, store, subscribe, watchStationStates } from "./store.js";
import { acquireView } from "./views/acquire.js";
import { modelsView } from "./views/models.js";
import { sessionView } from "./views/session.js";
import { sessionsView } from "./views/sessions.js";
import { sourcesView } from "./views/sources.js";

function report(error) {
  toast(error.message || String(error), { error: true });
}

function tokenForm() {
  const form = document.getElementById("token-form");
  const input = document.getElementById("token");
  input.value = getToken();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    form.closest("details").open = false;
    toast(input.value.trim() ? "Token kept for this tab" : "Token cleared");
  });
}

async function main() {
  tokenForm();
  const config = await api("/config.json");
  const mapView = await createMapView(
    document.getElementById("map"),
    document.getElementById("legend"),
    config,
  );
  new ResizeObserver(() => mapView.resize()).observe(document.getElementById("map"));
  subscribe((what) => {
    if (what === "stations") mapView.receivers.setStations(store.stations);
    if (what === "stations" || what === "states") mapView.receivers.setStates(store.states);
  });
  await Promise.all([loadStations(), loadSources()]);
  mapView.fitReceivers();
  watchStationStates(report);

  route(/^\/$/, acquireView, "acquire");
  route(/^\/sessions$/, sessionsView, "sessions");
  route(/^\/sessions\/([0-9a-f-]{36})$/, sessionView, "sessions");
  route(/^\/sources$/, sourcesView, "sources");
  route(/^\/models$/, modelsView, "models");
  start({ panel: document.getElementById("panel"), mapView, report });
  document.body.dataset.ready = "true";
}

main().catch(report);
