// How numbers and times read on the page.

export function mhz(value) {
  return value == null ? "–" : `${Number(value).toFixed(4)} MHz`;
}

export function seconds(value) {
  return value == null ? "–" : `${Number(value).toFixed(value < 10 ? 1 : 0)} s`;
}

export function metres(value) {
  if (value == null) return "–";
  return value >= 1000 ? `${(value / 1000).toFixed(value >= 10000 ? 0 : 1)} km` : `${Math.round(value)} m`;
}

export function number(value, digits = 1, unit = "") {
  if (value == null || Number.isNaN(value)) return "–";
  return `${Number(value).toFixed(digits)}${unit ? ` ${unit}` : ""}`;
}

export function time(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/** "11-30 07:59:42": enough in a list of recent sessions (the full time is its title). */
export function shortTime(iso) {
  return iso ? time(iso).slice(5) : "–";
}

export function position(lat, lon) {
  if (lat == null || lon == null) return "–";
  const ns = lat >= 0 ? "N" : "S";
  const ew = lon >= 0 ? "E" : "W";
  return `${Math.abs(lat).toFixed(4)}° ${ns}, ${Math.abs(lon).toFixed(4)}° ${ew}`;
}

export function shortId(id) {
  return id ? String(id).slice(0, 8) : "–";
}
