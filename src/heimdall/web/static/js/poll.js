// Repeating a request while a view is open; stops with the view.

/**
 * Calls `task` now, then again `interval(result)` ms after each run ends (null: stop).
 * Returns stop(). Errors go to `onError` and polling goes on.
 */
export function poll(task, interval, onError = () => {}) {
  let timer = null;
  let stopped = false;
  const controller = new AbortController();

  async function run() {
    let result;
    try {
      result = await task(controller.signal);
    } catch (error) {
      if (stopped || error.name === "AbortError") return;
      onError(error);
    }
    if (stopped) return;
    const wait = interval(result);
    if (wait != null) timer = setTimeout(run, wait);
  }

  run();
  return () => {
    stopped = true;
    clearTimeout(timer);
    controller.abort();
  };
}
