// Lines of latitude and longitude with labels, redrawn for the visible area.
import * as L from "./leaflet.js";

// Spacings in degrees; the first that gives at most MAX_LINES lines across the view.
const STEPS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30];
const MAX_LINES = 8;

function step(span) {
  return STEPS.find((s) => span / s <= MAX_LINES) || 30;
}

function label(value, positive, negative, digits) {
  const hemisphere = value > 0 ? positive : value < 0 ? negative : "";
  return `${Math.abs(value).toFixed(digits)}°${hemisphere}`;
}

function decimals(spacing) {
  return spacing >= 1 ? 0 : spacing >= 0.1 ? 1 : 2;
}

// The text is made here from numbers, never from data: safe as the icon's HTML.
// Latitude labels sit at the right edge, ending at their point (clear of the zoom buttons).
function tag(latlng, text, alignEnd = false) {
  const html = alignEnd ? `<span class="end">${text}</span>` : text;
  const icon = L.divIcon({ className: "graticule-label", html, iconSize: null });
  return L.marker(latlng, { icon, interactive: false, keyboard: false });
}

export function graticule(map, renderer) {
  const layer = L.layerGroup().addTo(map);
  const style = { color: "#6d7f99", weight: 0.6, opacity: 0.6, interactive: false, renderer };

  function draw() {
    layer.clearLayers();
    const bounds = map.getBounds();
    const south = Math.max(bounds.getSouth(), -85);
    const north = Math.min(bounds.getNorth(), 85);
    const west = bounds.getWest();
    const east = bounds.getEast();
    const spacing = step(Math.max(north - south, (east - west) / 2));
    const digits = decimals(spacing);
    const labelInset = (north - south) * 0.02;
    for (let lon = Math.ceil(west / spacing) * spacing; lon <= east; lon += spacing) {
      layer.addLayer(L.polyline([[south, lon], [north, lon]], style));
      const wrapped = ((((lon + 180) % 360) + 360) % 360) - 180;
      layer.addLayer(tag([north - labelInset, lon], label(wrapped, "E", "W", digits)));
    }
    const labelLon = east - (east - west) * 0.01;
    for (let lat = Math.ceil(south / spacing) * spacing; lat <= north; lat += spacing) {
      layer.addLayer(L.polyline([[lat, west], [lat, east]], style));
      layer.addLayer(tag([lat, labelLon], label(lat, "N", "S", digits), true));
    }
  }

  map.on("moveend", draw);
  draw();
  return layer;
}
