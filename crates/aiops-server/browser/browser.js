// AI-Ops Core browser instrumentation. Include it before the page's own scripts:
//
//   <script src="https://aiops.example/v1/browser.js" data-app="shop-web"
//           data-api="/api/" data-slow-ms="2000"></script>
//
// It reports uncaught errors, unhandled rejections, failed and slow fetch/XHR calls (method,
// path template, status, duration, an excerpt of the error body) and the page load, batched
// to the core's /v1/browser/events (sendBeacon when the page is hidden or left). Calls to the
// page's API (URLs starting with data-api, relative to the page or absolute for an API on
// another origin, which must then allow the header in CORS; default "/api/") get a W3C
// `traceparent` header, so the browser's request and the back end's handling share a trace id.
// Nothing else is collected: no cookies, no query strings, no request bodies, no user input.
(function () {
  "use strict";
  if (window.__aiops) return;
  var script = document.currentScript;
  var data = (script && script.dataset) || {};
  var scriptUrl = new URL((script && script.src) || "/v1/browser.js", location.href);
  var endpoint = data.endpoint || scriptUrl.origin + "/v1/browser/events";
  var app = data.app || location.hostname || "web";
  var apiPrefix = new URL(data.api || "/api/", location.href).href;
  var slowMs = Number(data.slowMs || 2000);
  var MAX_QUEUE = 200, MAX_BATCH = 50, FLUSH_MS = 2000, MAX_EXCERPT = 300, MAX_PER_MINUTE = 300;
  var queue = [], sentThisMinute = 0, minuteStart = Date.now(), dropped = 0;

  function hex(bytes) {
    var out = "";
    var values = crypto.getRandomValues(new Uint8Array(bytes));
    for (var i = 0; i < values.length; i++) out += (values[i] < 16 ? "0" : "") + values[i].toString(16);
    return out;
  }
  // Numbers, UUIDs and long hex ids in a path become ":id", so that one route is one template.
  function template(path) {
    return path.split("/").map(function (segment) {
      if (/^\d+$/.test(segment) || /^[0-9a-f]{8}-[0-9a-f-]{27}$/i.test(segment) || /^[0-9a-f]{16,}$/i.test(segment)) return ":id";
      return segment;
    }).join("/");
  }
  function clip(text, max) {
    text = String(text == null ? "" : text);
    return text.length > max ? text.slice(0, max) + "…" : text;
  }
  function push(event) {
    var now = Date.now();
    if (now - minuteStart > 60000) { minuteStart = now; sentThisMinute = 0; }
    if (queue.length >= MAX_QUEUE || sentThisMinute >= MAX_PER_MINUTE) { dropped++; return; }
    sentThisMinute++;
    event.page = template(location.pathname);
    event.at = now;
    queue.push(event);
    if (queue.length >= MAX_BATCH) flush(false);
  }
  function flush(leaving) {
    if (!queue.length) return;
    var batch = queue.splice(0, MAX_BATCH);
    var body = JSON.stringify({ app: app, dropped: dropped, events: batch });
    dropped = 0;
    if (leaving && navigator.sendBeacon) {
      // A beacon is sent as text/plain: a simple request, no preflight.
      navigator.sendBeacon(endpoint, new Blob([body], { type: "text/plain" }));
    } else {
      origFetch(endpoint, { method: "POST", body: body, keepalive: true, headers: { "Content-Type": "text/plain" } })
        .catch(function () {});
    }
    if (queue.length) flush(leaving);
  }
  function isApi(url) {
    return url.href.indexOf(apiPrefix) === 0;
  }
  function report(method, url, status, started, traceId, excerpt) {
    var duration = Date.now() - started;
    var failed = status === 0 || status >= 400;
    if (!failed && duration < slowMs) return;
    push({
      type: "request", method: method, path: template(url.pathname), status: status,
      duration_ms: duration, trace_id: traceId || null, error: excerpt ? clip(excerpt, MAX_EXCERPT) : null,
    });
  }

  var origFetch = window.fetch.bind(window);
  window.fetch = function (input, init) {
    var request = new Request(input, init);
    var url = new URL(request.url, location.href);
    if (url.href === endpoint || !isApi(url)) return origFetch(request);
    var traceId = hex(16);
    var headers = new Headers(request.headers);
    headers.set("traceparent", "00-" + traceId + "-" + hex(8) + "-01");
    var started = Date.now();
    return origFetch(new Request(request, { headers: headers })).then(function (response) {
      if (response.status >= 400) {
        response.clone().text().then(function (text) {
          report(request.method, url, response.status, started, traceId, text);
        }, function () { report(request.method, url, response.status, started, traceId, null); });
      } else {
        report(request.method, url, response.status, started, traceId, null);
      }
      return response;
    }, function (error) {
      report(request.method, url, 0, started, traceId, error && error.message);
      throw error;
    });
  };

  var open = XMLHttpRequest.prototype.open, send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.open = function (method, url) {
    this.__aiops = { method: String(method).toUpperCase(), url: new URL(url, location.href) };
    return open.apply(this, arguments);
  };
  XMLHttpRequest.prototype.send = function () {
    var info = this.__aiops, xhr = this;
    if (info && isApi(info.url)) {
      info.trace = hex(16);
      this.setRequestHeader("traceparent", "00-" + info.trace + "-" + hex(8) + "-01");
      info.started = Date.now();
      this.addEventListener("loadend", function () {
        var text = null;
        try { text = xhr.status >= 400 && (xhr.responseType === "" || xhr.responseType === "text") ? xhr.responseText : null; } catch (e) {}
        report(info.method, info.url, xhr.status, info.started, info.trace, text);
      });
    }
    return send.apply(this, arguments);
  };

  window.addEventListener("error", function (event) {
    push({
      type: "error", message: clip(event.message || "error", MAX_EXCERPT),
      source: event.filename ? template(new URL(event.filename, location.href).pathname) : null,
      line: event.lineno || null, column: event.colno || null,
      stack: event.error && event.error.stack ? clip(event.error.stack, 1000) : null,
    });
  });
  window.addEventListener("unhandledrejection", function (event) {
    var reason = event.reason;
    push({ type: "rejection", message: clip(reason && reason.message ? reason.message : reason, MAX_EXCERPT),
           stack: reason && reason.stack ? clip(reason.stack, 1000) : null });
  });
  window.addEventListener("load", function () {
    setTimeout(function () {
      var nav = performance.getEntriesByType && performance.getEntriesByType("navigation")[0];
      push({ type: "page_load", duration_ms: Math.round(nav ? nav.duration || nav.loadEventEnd : performance.now()) });
    }, 0);
  });
  document.addEventListener("visibilitychange", function () { if (document.visibilityState === "hidden") flush(true); });
  window.addEventListener("pagehide", function () { flush(true); });
  setInterval(function () { flush(false); }, FLUSH_MS);
  window.__aiops = { flush: flush, app: app, endpoint: endpoint };
})();
