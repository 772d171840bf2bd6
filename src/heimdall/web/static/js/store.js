// What several parts of the page show at once: receivers, their live state, known sources.
import { api } from "./api.js";
import { poll } from "./poll.js";

const listeners = new Set();

export const store = {
  stations: [], // the registry: id, name, latitude, longitude, ...
  states: new Map(), // station id -> {state, task_id, error, busy_channels, channels}
  sources: [], // known sources
};

export function subscribe(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function changed(what) {
  for (const listener of listeners) listener(what);
}

export async function loadStations() {
  store.stations = await api("/api/v1/acquisition/stations");
  changed("stations");
}

export async function loadSources() {
  const page = await api("/api/v1/training/known-sources?limit=500");
  store.sources = page.items;
  changed("sources");
}

const STATE_POLL_MS = 2000;

/** Keeps store.states current while the page is open. */
export function watchStationStates(onError) {
  return poll(
    async (signal) => {
      const states = await api("/api/v1/acquisition/stations/state", { signal });
      store.states = new Map(states.map((s) => [s.station_id, s]));
      changed("states");
    },
    () => STATE_POLL_MS,
    onError,
  );
}
