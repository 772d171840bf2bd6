// The one place the page imports Leaflet from (copied from npm by the web build).
export * from "/static/vendor/leaflet/leaflet-src.esm.js";
