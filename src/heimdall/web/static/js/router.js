// Views by location hash: "#/sessions/<id>?x=y" -> the view whose pattern matches.
// A view is a function (context) -> cleanup; the cleanup runs when another view opens.

const routes = [];

export function route(pattern, view, nav) {
  routes.push({ pattern, view, nav });
}

function parse(hash) {
  const text = hash.replace(/^#/, "") || "/";
  const [path, search = ""] = text.split("?");
  return { path, params: new URLSearchParams(search) };
}

/** Changes the hash's query part without opening the view again. */
export function setQuery(params) {
  const { path } = parse(location.hash);
  const search = new URLSearchParams(
    Object.entries(params).filter(([, v]) => v !== "" && v != null),
  ).toString();
  history.replaceState(null, "", `#${path}${search ? `?${search}` : ""}`);
}

export function start(context) {
  let cleanup = null;

  function open() {
    if (cleanup) cleanup();
    cleanup = null;
    const { path, params } = parse(location.hash);
    for (const { pattern, view, nav } of routes) {
      const match = path.match(pattern);
      if (!match) continue;
      for (const link of document.querySelectorAll("[data-nav]")) {
        link.classList.toggle("active", link.dataset.nav === nav);
      }
      cleanup = view({ ...context, match, params }) || null;
      return;
    }
    location.hash = "#/";
  }

  window.addEventListener("hashchange", open);
  open();
}
