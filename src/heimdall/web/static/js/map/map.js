// The page's map: base layers, receivers and the estimate of the session on view.
import * as L from "./leaflet.js";
import { baseLayers } from "./base.js";
import { EstimateLayer } from "./estimate.js";
import { ReceiverLayer, STATE_COLOURS } from "./receivers.js";

// North-west Italy until the receivers are known.
const INITIAL_VIEW = { center: [45.0, 8.0], zoom: 7 };

export async function createMapView(element, legend, config) {
  const map = L.map(element, {
    center: INITIAL_VIEW.center,
    zoom: INITIAL_VIEW.zoom,
    minZoom: 2,
    maxZoom: 18,
    worldCopyJump: true,
    attributionControl: Boolean(config.tile_url),
  });
  await baseLayers(map, config);
  const receivers = new ReceiverLayer(map);
  const estimate = new EstimateLayer(map);
  drawLegend(legend);

  function fit(bounds, pad = 0.15, maxZoom = 11) {
    if (bounds && bounds.isValid()) map.fitBounds(bounds.pad(pad), { maxZoom });
  }

  return {
    map,
    receivers,
    estimate,
    fitReceivers: () => fit(receivers.bounds()),
    // The ellipse a third of the view: it can be metres across while receivers are 100 km apart.
    fitEstimate: () => fit(estimate.bounds(), 1, 17),
    fitSurface: () => fit(estimate.surfaceBounds(), 0.1, 17),
    // The map pane changes size with the layout (phones): Leaflet must be told.
    resize: () => map.invalidateSize(),
  };
}

function drawLegend(legend) {
  const entries = [
    ["idle", STATE_COLOURS.idle],
    ["recording", STATE_COLOURS.recording],
    ["failed", STATE_COLOURS.failed],
    ["estimate, 95 % ellipse", "#6a1fbf"],
    ["known source", "#ffffff"],
  ];
  legend.replaceChildren(
    ...entries.map(([text, colour]) => {
      const row = document.createElement("div");
      const dot = document.createElement("span");
      dot.className = "dot";
      dot.style.background = colour;
      row.append(dot, text);
      return row;
    }),
  );
}
