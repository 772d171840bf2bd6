// A localization on the map: likelihood surface, 95 % ellipse, estimate, known source.
import * as L from "./leaflet.js";
import { ellipseLatLngs } from "./ellipse.js";

export class EstimateLayer {
  constructor(map) {
    this.map = map;
    this.group = L.featureGroup().addTo(map);
    this.ellipse = null;
    this.surface = null;
  }

  clear() {
    this.group.clearLayers();
    this.ellipse = null;
    this.surface = null;
  }

  addSource(source) {
    const tooltip = document.createElement("span");
    tooltip.textContent = `known source: ${source.name}`;
    L.circleMarker([source.latitude, source.longitude], {
      radius: 6,
      color: "#111",
      weight: 2,
      fillColor: "#fff",
      fillOpacity: 1,
      className: "heimdall-known-source",
    })
      .bindTooltip(tooltip)
      .addTo(this.group);
  }

  showSources(sources) {
    this.clear();
    for (const source of sources) this.addSource(source);
  }

  /** localization: the API's LocalizationOut; source: a known source or null. */
  show(localization, source) {
    this.clear();
    if (source) this.addSource(source);
    if (!localization || localization.latitude == null) return;
    const { latitude, longitude, ellipse } = localization;
    if (localization.surface_geojson) {
      this.surface = L.geoJSON(localization.surface_geojson, {
        interactive: false,
        style: (feature) => ({
          stroke: false,
          fillColor: "#6a1fbf",
          fillOpacity: 0.04 + 0.3 * feature.properties.likelihood,
          className: "heimdall-surface",
        }),
      }).addTo(this.group);
    }
    if (ellipse) {
      this.ellipse = L.polygon(
        ellipseLatLngs(latitude, longitude, ellipse.semi_major_m, ellipse.semi_minor_m, ellipse.orientation_deg),
        { color: "#6a1fbf", weight: 2, fillOpacity: 0.05, className: "heimdall-ellipse" },
      )
        .bindTooltip("95 % confidence ellipse")
        .addTo(this.group);
    }
    L.circleMarker([latitude, longitude], {
      radius: 6,
      color: "#fff",
      weight: 2,
      fillColor: "#6a1fbf",
      fillOpacity: 1,
      className: "heimdall-estimate",
    })
      .bindTooltip(`estimate (${localization.method})`)
      .addTo(this.group);
  }

  /** What to zoom to: the ellipse when there is one (it can be a few metres across). */
  bounds() {
    if (this.ellipse) return this.ellipse.getBounds();
    return this.group.getLayers().length ? this.group.getBounds() : null;
  }

  surfaceBounds() {
    return this.surface && this.surface.getLayers().length ? this.surface.getBounds() : null;
  }
}
