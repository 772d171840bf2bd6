// The outline of a confidence ellipse for drawing: semi-axes in metres on the ground,
// orientation as the azimuth of the major axis from true north.
//
// Offsets go from metres to degrees with the WGS84 radii of curvature at the centre
// (a local tangent plane). Over a few tens of kilometres the error is far below a
// pixel; the estimate itself is computed server-side on the ellipsoid (pyproj).

const WGS84_A_M = 6378137.0;
const WGS84_E2 = 6.69437999014e-3;
const DEG = Math.PI / 180;

export function ellipseLatLngs(latitude, longitude, semiMajorM, semiMinorM, orientationDeg, points = 72) {
  const phi = latitude * DEG;
  const w = 1 - WGS84_E2 * Math.sin(phi) ** 2;
  const meridianM = (WGS84_A_M * (1 - WGS84_E2)) / w ** 1.5;
  const primeVerticalM = WGS84_A_M / Math.sqrt(w);
  const theta = orientationDeg * DEG;
  const outline = [];
  for (let i = 0; i < points; i += 1) {
    const t = (2 * Math.PI * i) / points;
    const major = semiMajorM * Math.cos(t);
    const minor = semiMinorM * Math.sin(t);
    // Major axis along azimuth theta; minor axis 90 degrees clockwise from it.
    const east = major * Math.sin(theta) + minor * Math.cos(theta);
    const north = major * Math.cos(theta) - minor * Math.sin(theta);
    outline.push([
      latitude + north / meridianM / DEG,
      longitude + east / (primeVerticalM * Math.cos(phi)) / DEG,
    ]);
  }
  return outline;
}
