// "#/sessions": every acquisition, newest first, a page at a time, live while any runs.
import { api, query } from "../api.js";
import { badge, h, replace } from "../dom.js";
import * as fmt from "../format.js";
import { poll } from "../poll.js";
import { setQuery } from "../router.js";
import { store } from "../store.js";

const PAGE_SIZE = 25;
const ACTIVE = new Set(["PENDING", "PROGRESS"]);
const LIVE_MS = 1000;
const IDLE_MS = 5000;

function select(name, label, options, value) {
  return h(
    "label",
    {},
    label,
    h("select", { name }, options.map(([v, text]) => h("option", { value: v, selected: v === value }, text))),
  );
}

function filtersForm(filters, onChange) {
  const form = h(
    "form",
    { class: "filters", id: "session-filters" },
    select("state", "State", [["", "any"], ...["PENDING", "PROGRESS", "SUCCESS", "FAILED", "CANCELLED"].map((s) => [s, s])], filters.state),
    select("approval", "Review", [["", "any"], ["pending", "pending"], ["approved", "approved"], ["rejected", "rejected"]], filters.approval),
    select("known_source_id", "Known source", [["", "any"], ...store.sources.map((s) => [s.id, s.name])], filters.known_source_id),
    h("label", {}, "From (MHz)", h("input", { name: "frequency_min_mhz", type: "number", step: "any", min: "0", value: filters.frequency_min_mhz })),
    h("label", {}, "To (MHz)", h("input", { name: "frequency_max_mhz", type: "number", step: "any", min: "0", value: filters.frequency_max_mhz })),
  );
  form.addEventListener("change", () => onChange(Object.fromEntries(new FormData(form).entries())));
  form.addEventListener("submit", (event) => event.preventDefault());
  return form;
}

function estimateText(localization) {
  if (!localization) return "–";
  if (localization.latitude == null) return localization.status;
  const size = localization.semi_major_m != null ? ` ±${fmt.metres(localization.semi_major_m)}` : "";
  return `${fmt.position(localization.latitude, localization.longitude)}${size}`;
}

function row(item) {
  const progress = ACTIVE.has(item.status)
    ? h("progress", { max: "100", value: String(item.progress), title: `${Math.round(item.progress)} %` })
    : null;
  return h(
    "tr",
    { class: "clickable", dataset: { task: item.task_id, status: item.status },
      onclick: () => (location.hash = `#/sessions/${item.task_id}`) },
    h("td", {}, h("a", { href: `#/sessions/${item.task_id}`, title: fmt.time(item.timestamp) },
      fmt.shortTime(item.timestamp))),
    h("td", { class: "num" }, item.frequency_mhz.toFixed(4)),
    h("td", { class: "num wide-only" }, fmt.seconds(item.duration_seconds)),
    h("td", {}, badge(item.status), " ", progress),
    h("td", { class: "num" }, `${item.websdr_count}/${item.stations.length}`),
    h("td", {}, badge(item.approval)),
    h("td", { class: "wide-only wrap" }, item.known_source_name || ""),
    h("td", { class: "wrap" }, estimateText(item.localization)),
  );
}

const COLUMNS = [
  ["time", ""], ["MHz", "num"], ["duration", "num wide-only"], ["state", ""], ["rx", "num"],
  ["review", ""], ["known source", "wide-only"], ["estimate", ""],
];

function table(items) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { id: "sessions-table" },
      h("thead", {}, h("tr", {}, COLUMNS.map(([t, cls]) => h("th", { class: cls }, t)))),
      h("tbody", {}, items.map(row)),
    ),
  );
}

function pager(page, onPage) {
  const first = page.total === 0 ? 0 : page.offset + 1;
  const last = Math.min(page.offset + page.limit, page.total);
  return h(
    "div",
    { class: "pager" },
    h("button", { class: "secondary", id: "page-prev", disabled: page.offset === 0,
      onclick: () => onPage(Math.max(0, page.offset - page.limit)) }, "‹ Newer"),
    h("span", { id: "page-range" }, `${first}–${last} of ${page.total}`),
    h("button", { class: "secondary", id: "page-next", disabled: last >= page.total,
      onclick: () => onPage(page.offset + page.limit) }, "Older ›"),
  );
}

export function sessionsView({ panel, mapView, params, report }) {
  mapView.estimate.clear();
  mapView.fitReceivers();
  const filters = Object.fromEntries(params.entries());
  let offset = Number(filters.offset || 0);
  delete filters.offset;
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  let stop = null;

  function restart() {
    if (stop) stop();
    setQuery({ ...filters, offset: offset || "" });
    stop = poll(
      async (signal) => {
        const page = await api(`/api/v1/sessions/recent${query({ ...filters, limit: PAGE_SIZE, offset })}`, { signal });
        replace(
          body,
          page.items.length ? table(page.items) : h("p", { class: "muted" }, "No sessions match."),
          pager(page, (next) => {
            offset = next;
            restart();
          }),
        );
        return page;
      },
      (page) => (page && page.items.some((i) => ACTIVE.has(i.status)) ? LIVE_MS : IDLE_MS),
      report,
    );
  }

  const form = filtersForm(filters, (values) => {
    for (const key of Object.keys(filters)) delete filters[key];
    Object.assign(filters, Object.fromEntries(Object.entries(values).filter(([, v]) => v !== "")));
    offset = 0;
    restart();
  });
  replace(panel, h("div", { class: "card" }, h("h2", {}, "Sessions"), form, body));
  restart();
  return () => stop && stop();
}
