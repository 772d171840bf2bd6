// The map's background. With a configured tile server, its tiles; without one (the
// default) an offline base: country and region outlines shipped with the page.
import * as L from "./leaflet.js";
import { api } from "../api.js";
import { graticule } from "./graticule.js";

const LAND = { color: "#8d96a3", weight: 0.8, fillColor: "#f3f1ea", fillOpacity: 1 };
const REGIONS = { color: "#a9a294", weight: 0.6, dashArray: "3 3", fill: false };

async function outlines(map, renderer) {
  const [countries, regions] = await Promise.all([
    api("/static/vendor/geo/countries.geojson"),
    api("/static/vendor/geo/regions.geojson"),
  ]);
  L.geoJSON(countries, { style: LAND, renderer, interactive: false, pane: "basePane" }).addTo(map);
  L.geoJSON(regions, { style: REGIONS, renderer, interactive: false, pane: "basePane" }).addTo(map);
}

export async function baseLayers(map, config) {
  // Outlines draw on canvas, in a pane below every overlay.
  map.createPane("basePane").style.zIndex = 250;
  const renderer = L.canvas({ pane: "basePane" });
  if (config.tile_url) {
    L.tileLayer(config.tile_url, { attribution: config.tile_attribution, maxZoom: 18 }).addTo(map);
  } else {
    await outlines(map, renderer);
  }
  graticule(map, renderer);
  L.control.scale({ imperial: false, maxWidth: 160 }).addTo(map);
}
