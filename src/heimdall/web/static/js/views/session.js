// "#/sessions/<id>": one acquisition live, its measurements and spectra, its estimate on
// the map with residuals, and the operator's review.
import { api } from "../api.js";
import { badge, h, replace, toast } from "../dom.js";
import * as fmt from "../format.js";
import { poll } from "../poll.js";
import { store } from "../store.js";
import { drawSpectrum } from "./spectrum.js";

const ACTIVE = new Set(["PENDING", "PROGRESS"]);
const REVIEWER_KEY = "heimdall.reviewer";
// After SUCCESS the worker localizes; wait this long for its result before giving up.
const LOCALIZATION_WAIT_MS = 60000;

function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function statusCard(s) {
  const progress = h("progress", { max: "100", value: String(s.progress), id: "session-progress" });
  const errors = s.errors.length
    ? h("ul", { class: "error" }, s.errors.map((e) => h("li", {}, `${e.station_id}: ${e.error}`)))
    : null;
  return h(
    "div",
    { class: "card" },
    h("h2", {}, "Session ", h("code", {}, fmt.shortId(s.task_id)), " ",
      h("span", { id: "session-state", dataset: { state: s.state } }, badge(s.state))),
    facts([
      ["progress", [progress, ` ${Math.round(s.progress)} %`]],
      ["frequency", fmt.mhz(s.frequency_mhz)],
      ["duration", fmt.seconds(s.duration_seconds)],
      ["receivers", s.stations.join(", ")],
      ["known source", s.known_source ? s.known_source.name : "none"],
      ["description", s.description || "–"],
      ["created", fmt.time(s.created_at)],
      ["finished", fmt.time(s.finished_at)],
    ]),
    s.error_message ? h("p", { class: "error" }, s.error_message) : null,
    errors,
  );
}

function zoomButtons(mapView) {
  return h("div", { class: "actions" },
    h("button", { class: "secondary", id: "zoom-estimate", onclick: mapView.fitEstimate }, "Zoom to ellipse"),
    h("button", { class: "secondary", id: "zoom-surface", onclick: mapView.fitSurface }, "Likelihood surface"),
    h("button", { class: "secondary", id: "zoom-receivers", onclick: mapView.fitReceivers }, "Receivers"));
}

function estimateCard(s, mapView) {
  const loc = s.localization;
  let content;
  if (!loc) {
    content = h("p", { class: "muted", id: "estimate-pending" },
      s.state === "SUCCESS" ? "Localizing…" : "No estimate for this session.");
  } else if (loc.latitude == null) {
    content = h("p", { class: "muted" }, loc.message || loc.status);
  } else {
    const e = loc.ellipse;
    content = facts([
      ["position", h("span", { id: "estimate-position" }, fmt.position(loc.latitude, loc.longitude))],
      ["95 % ellipse", e ? `${fmt.metres(e.semi_major_m)} × ${fmt.metres(e.semi_minor_m)}, ${fmt.number(e.orientation_deg, 0)}° from north` : "–"],
      ["method", loc.method],
      ["GDOP", fmt.number(loc.gdop, 2)],
      ["receivers used", String(loc.receivers_used)],
      ["calibration", loc.calibration_version || "default"],
    ]);
    content = [content, zoomButtons(mapView), leftOutList(loc.inputs)];
  }
  const residuals = loc && loc.residuals.length ? residualTable(loc.residuals) : null;
  return h("div", { class: "card", id: "estimate" }, h("h3", {}, "Estimate"), content, residuals);
}

// Which receivers fed no part of the fix, and why: what an operator weighs before
// approving a session for training.
function leftOutList(inputs) {
  if (!inputs) return null;
  const reasons = (part, excluded) =>
    Object.entries(excluded || {}).map(([id, why]) => [part, id, why]);
  const rows = [
    ...reasons("power", inputs.power_excluded),
    ...reasons("TDOA", inputs.tdoa_excluded),
  ];
  if (!rows.length) return null;
  return h("div", { id: "left-out" }, h("h4", {}, "Left out"),
    h("ul", {}, rows.map(([part, id, why]) =>
      h("li", { dataset: { part, station: id } }, `${part} of ${id}: ${why}`))));
}

function residualTable(residuals) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { id: "residuals-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "kind"), h("th", {}, "receivers"),
        h("th", { class: "num" }, "residual"), h("th", { class: "num" }, "normalised"))),
      h("tbody", {}, residuals.map((r) => h("tr", {},
        h("td", {}, r.kind),
        h("td", {}, r.receiver_ids.join(" – ")),
        h("td", { class: "num" }, `${fmt.number(r.residual, r.unit === "ns" ? 0 : 1)} ${r.unit}`),
        h("td", { class: "num" }, fmt.number(r.normalised, 2))))),
    ),
  );
}

function measurementsCard(s) {
  if (!s.measurements.length) return null;
  const rows = s.measurements.map((m) => h("tr", { dataset: { station: m.websdr_id } },
    h("td", {}, m.websdr_id),
    h("td", { class: "num" }, fmt.number(m.snr, 1)),
    h("td", { class: "num" }, fmt.number(m.power_dbm, 1)),
    h("td", { class: "num" }, fmt.number(m.noise_floor_dbm, 1)),
    h("td", { class: "num" }, fmt.number(m.frequency_offset, 1)),
    h("td", { class: "num" }, fmt.number(m.occupied_bandwidth_hz, 0)),
    h("td", {}, m.gps_locked ? "yes" : "no")));
  const head = ["receiver", "SNR dB", "power dBm", "noise dBm", "offset Hz", "bandwidth Hz", "GPS"];
  return h(
    "div",
    { class: "card" },
    h("h3", {}, "Measurements"),
    h("div", { class: "table-wrap" }, h("table", { id: "measurements-table" },
      h("thead", {}, h("tr", {}, head.map((t, i) => h("th", { class: i && i < 6 ? "num" : "" }, t)))),
      h("tbody", {}, rows))),
    h("h3", {}, "Spectra"),
    h("div", { class: "spectra", id: "spectra" }, s.measurements.map((m) => spectrumFigure(s.task_id, m.websdr_id))),
  );
}

function spectrumFigure(taskId, stationId) {
  const canvas = h("canvas", { dataset: { station: stationId }, "aria-label": `spectrum at ${stationId}` });
  const caption = h("figcaption", {}, `${stationId}: loading spectrum…`);
  api(`/api/v1/acquisition/spectrum/${taskId}/${encodeURIComponent(stationId)}?bins=256`)
    .then((spectrum) => {
      drawSpectrum(canvas, spectrum);
      canvas.dataset.drawn = "true";
      caption.textContent = `${stationId}: kHz from ${fmt.mhz(spectrum.center_frequency_hz / 1e6)}, dBFS/Hz`;
    })
    .catch((error) => (caption.textContent = `${stationId}: ${error.message}`));
  return h("figure", {}, canvas, caption);
}

// draft: what the operator is typing, kept across redraws of the card.
function reviewCard(s, draft, refresh, report) {
  const comment = h("textarea", { name: "comment", rows: "2", maxlength: "2000", id: "review-comment",
    oninput: (e) => (draft.comment = e.target.value) });
  comment.value = draft.comment;
  const reviewer = h("input", { name: "reviewer", maxlength: "100", id: "review-reviewer",
    value: draft.reviewer, oninput: (e) => (draft.reviewer = e.target.value) });
  async function decide(verb) {
    const body = {};
    if (comment.value.trim()) body.comment = comment.value.trim();
    if (reviewer.value.trim()) {
      body.reviewer = reviewer.value.trim();
      localStorage.setItem(REVIEWER_KEY, body.reviewer);
    }
    try {
      const review = await api(`/api/v1/sessions/${verb}/${s.task_id}`, { method: "POST", body });
      toast(`Session ${review.approval}`);
      draft.comment = "";
      refresh();
    } catch (error) {
      report(error);
    }
  }
  const finished = !ACTIVE.has(s.state);
  return h(
    "div",
    { class: "card", id: "review" },
    h("h3", {}, "Review ", h("span", { id: "review-state" }, badge(s.approval))),
    s.reviewed_at
      ? h("p", { class: "muted" }, `${s.reviewed_by || "someone"} at ${fmt.time(s.reviewed_at)}`,
          s.review_comment ? `: “${s.review_comment}”` : "")
      : null,
    h("label", {}, "Reviewer", reviewer),
    h("label", {}, "Comment", comment),
    h("div", { class: "actions" },
      h("button", { id: "approve", disabled: s.state !== "SUCCESS", onclick: () => decide("approve") }, "Approve"),
      h("button", { id: "reject", class: "danger", disabled: !finished, onclick: () => decide("reject") }, "Reject"),
      ACTIVE.has(s.state)
        ? h("button", { id: "cancel", class: "secondary", onclick: () => cancel(s.task_id, refresh, report) }, "Cancel acquisition")
        : null),
    linkSource(s, refresh, report),
  );
}

async function cancel(taskId, refresh, report) {
  try {
    await api(`/api/v1/acquisition/cancel/${taskId}`, { method: "POST" });
    refresh();
  } catch (error) {
    report(error);
  }
}

function linkSource(s, refresh, report) {
  const choice = h("select", { id: "link-source" }, h("option", { value: "" }, "none"),
    store.sources.map((k) => h("option", { value: k.id, selected: s.known_source && s.known_source.id === k.id }, k.name)));
  const link = async () => {
    try {
      await api(`/api/v1/sessions/${s.task_id}/known-source`, {
        method: "PUT", body: { known_source_id: choice.value || null } });
      toast("Known source linked");
      refresh();
    } catch (error) {
      report(error);
    }
  };
  return h("div", { class: "actions" }, h("label", {}, "Recorded a known source", choice),
    h("button", { class: "secondary", onclick: link }, "Link"));
}

export function sessionView({ panel, mapView, match, report }) {
  const taskId = match[1];
  mapView.estimate.clear();
  replace(panel, h("p", { class: "muted" }, "Loading…"));
  const draft = { comment: "", reviewer: localStorage.getItem(REVIEWER_KEY) || "" };
  let shown = null; // what was last drawn, so that polling redraws only on change
  let fitted = false;
  let succeededAt = null;
  let stop = null;

  function render(s) {
    const key = JSON.stringify([s.state, s.progress, s.approval, s.reviewed_at, s.known_source?.id,
      s.localization?.created_at, s.measurements.length]);
    if (key === shown) return;
    shown = key;
    replace(panel, statusCard(s), estimateCard(s, mapView), reviewCard(s, draft, refresh, report), measurementsCard(s));
    mapView.estimate.show(s.localization, s.known_source);
    if (s.localization && s.localization.latitude != null && !fitted) {
      fitted = true;
      mapView.fitEstimate();
    }
  }

  function interval(s) {
    if (!s) return 2000;
    if (ACTIVE.has(s.state)) return 500;
    if (s.state === "SUCCESS" && !s.localization) {
      succeededAt = succeededAt || Date.now();
      return Date.now() - succeededAt < LOCALIZATION_WAIT_MS ? 1000 : null;
    }
    return null; // finished and localized: nothing more will change by itself
  }

  function refresh() {
    if (stop) stop();
    stop = poll(async (signal) => {
      const s = await api(`/api/v1/sessions/${taskId}`, { signal });
      render(s);
      return s;
    }, interval, report);
  }

  refresh();
  return () => {
    stop && stop();
    mapView.estimate.clear();
  };
}
