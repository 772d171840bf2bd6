// The receivers on the map, coloured by their live state.
import * as L from "./leaflet.js";

export const STATE_COLOURS = {
  idle: "#1b7f3b",
  recording: "#e39b00",
  failed: "#b3261e",
  unknown: "#7d8794",
};

function describe(station, state) {
  const lines = [station.name, `state: ${state ? state.state : "unknown"}`];
  if (state && state.busy_channels != null) {
    lines.push(`channels busy: ${state.busy_channels}${state.channels != null ? ` of ${state.channels}` : ""}`);
  }
  if (state && state.error) lines.push(`last error: ${state.error}`);
  return lines.join("\n");
}

export class ReceiverLayer {
  constructor(map) {
    this.map = map;
    this.group = L.featureGroup().addTo(map);
    this.markers = new Map();
  }

  setStations(stations) {
    this.group.clearLayers();
    this.markers.clear();
    for (const station of stations) {
      const marker = L.circleMarker([station.latitude, station.longitude], {
        radius: 7,
        weight: 2,
        color: "#ffffff",
        fillOpacity: 0.95,
        fillColor: STATE_COLOURS.unknown,
        className: "heimdall-receiver",
      });
      marker.bindTooltip("", { direction: "top", offset: [0, -6] });
      marker.station = station;
      this.markers.set(station.id, marker);
      this.group.addLayer(marker);
    }
  }

  setStates(states) {
    for (const [id, marker] of this.markers) {
      const state = states.get(id);
      const name = state ? state.state : "unknown";
      marker.setStyle({ fillColor: STATE_COLOURS[name] || STATE_COLOURS.unknown });
      const element = marker.getElement();
      if (element) {
        element.dataset.station = id;
        element.dataset.state = name;
      }
      // Tooltip text set as text: station names come from the registry.
      const tooltip = document.createElement("div");
      tooltip.style.whiteSpace = "pre";
      tooltip.textContent = describe(marker.station, state);
      marker.setTooltipContent(tooltip);
    }
  }

  bounds() {
    return this.group.getLayers().length ? this.group.getBounds() : null;
  }
}
