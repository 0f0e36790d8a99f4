/* livechat loader: the one tag.
 *   <script src="https://HOST/livechat.js" data-licence="123456" async></script>
 * Reports the page view, keeps the visitor's connection (WebSocket, or SSE +
 * POST), remembers each chat's events so a reload resumes where it was, draws
 * the launcher, and loads the widget only when needed.  No framework. */
(function () {
  "use strict";
  var tag = document.currentScript;
  if (!tag) return;
  var licence = tag.getAttribute("data-licence") || "";
  if (!/^\d{1,10}$/.test(licence)) return console.warn("livechat: data-licence is missing");
  var all = window.__livechat = window.__livechat || {};
  if (all[licence]) return;
  var group = tag.getAttribute("data-dispatch-to") || null;
  var lang = (tag.getAttribute("data-lang") || document.documentElement.lang || navigator.language || "").slice(0, 2).toLowerCase() == "pl" ? "pl" : "en";
  var base = tag.src.replace(/(livechat\.js|livesupport\/lib\/livesupport\.js)([?#].*)?$/, "");
  var KEY = "livechat:" + licence + ":", COOKIE = "lcv" + licence;
  var https = location.protocol == "https:";
  var listeners = [], seen = {}, pending = {}, outbox = [], n = 0;
  var ws = null, es = null, ready = false, mode = window.WebSocket ? "ws" : "sse";
  var wsFails = 0, fails = 0, backoff = 1000, timer = null, root = null, widget = null, refresh = null;

  function get(k) { try { return JSON.parse(localStorage.getItem(KEY + k)); } catch (e) { return null; } }
  function put(k, v) {
    try { v == null ? localStorage.removeItem(KEY + k) : localStorage.setItem(KEY + k, JSON.stringify(v)); } catch (e) {}
  }
  function cookie() {
    var m = document.cookie.match(new RegExp("(?:^|; )" + COOKIE + "=([^;]*)"));
    return m ? decodeURIComponent(m[1]) : "";
  }
  function remember(token, days) {
    api.token = token;
    document.cookie = COOKIE + "=" + encodeURIComponent(token) + "; path=/; max-age=" + (days || 365) * 86400 +
      "; SameSite=Lax" + (https ? "; Secure" : "");
  }
  function emit(m) { listeners.slice().forEach(function (f) { try { f(m); } catch (e) { console.error(e); } }); }
  function post(path, body) {
    return fetch(base + "livesupport/" + path, {
      method: "POST", credentials: "include", headers: { "Content-Type": "text/plain" }, body: JSON.stringify(body)
    }).then(function (r) { return r.json().then(function (j) { j.status = r.status; return j; }); });
  }

  var api = all[licence] = {
    licence: +licence, group: group, lang: lang, base: base, version: "__WIDGET_VERSION__",
    token: "", visitorId: "", reception: null, chats: [], invitation: null, look: {},
    on: function (f) { listeners.push(f); },
    /* A request (docs/events.md); a Promise of its result, rejected with the error message. */
    call: function (req) {
      return new Promise(function (resolve, reject) {
        if (mode == "ws") {
          req.id = "r" + ++n;
          pending[req.id] = [resolve, reject];
          ready ? ws.send(JSON.stringify(req)) : outbox.push(req);
          return;
        }
        var body = { licence: +licence, token: api.token, group: group, language: lang };
        for (var k in req) body[k] = req[k];
        post("call", body).then(function (m) { m.type == "reply" ? resolve(m.result) : reject(m); },
          function () { reject({ code: "disconnected", message: "no connection" }); });
      });
    },
    /* The chat as remembered here: {id, last, events: [...], closed, read}. */
    chat: function (id) { return get("chat:" + id) || { id: id, last: 0, events: [], closed: false, read: 0 }; },
    keep: function (c) { put("chat:" + c.id, c); },
    forget: function (id) { put("chat:" + id, null); if (get("current") == id) put("current", null); },
    current: function () { return get("current"); },
    setCurrent: function (id) { put("current", id); },
    seen: seen,
    open: function () { loadWidget(true); },
    pageView: pageView
  };

  function record(m) {
    var id = m.chatId, c = api.chat(id);
    if (m.sequence <= (seen[id] || 0)) return false;
    seen[id] = m.sequence;
    if (m.sequence > c.last) {
      c.events.push(m);
      if (c.events.length > 300) c.events.splice(0, c.events.length - 300);
      c.last = m.sequence;
    }
    if (m.event.type == "CloseEvent") c.closed = true;
    api.keep(c);
    return true;
  }
  function resume() {
    var r = {};
    api.chats.concat(api.current() ? [api.current()] : []).forEach(function (id) {
      var c = api.chat(id);
      if (!c.closed) r[id] = Math.max(seen[id] || 0, c.last);
      seen[id] = r[id] || seen[id] || 0;
    });
    return r;
  }

  function receive(m) {
    if (m.type == "welcome") {
      ready = true; fails = 0; backoff = 1000;
      remember(m.token, api.tokenDays);
      api.chats = m.chats; api.reception = m.reception;
      if (m.invitation) api.invitation = m.invitation;
      if (api.chats.length && !api.current()) api.setCurrent(api.chats[api.chats.length - 1]);
      while (outbox.length) ws.send(JSON.stringify(outbox.shift()));
      schedule();
      if (api.chats.length || api.invitation) loadWidget(false);
    } else if (m.type == "reply" || m.type == "error") {
      var p = pending[m.id];
      if (p) { delete pending[m.id]; m.type == "reply" ? p[0](m.result) : p[1](m); }
      return;
    } else if (m.type == "chat.event" && m.sequence) {
      if (!record(m)) return;
      if (m.event.type == "CloseEvent") api.chats = api.chats.filter(function (c) { return c != m.chatId; });
    } else if (m.type == "chat.opened") {
      if (api.chats.indexOf(m.chatId) < 0) api.chats.push(m.chatId);
      api.setCurrent(m.chatId);
      loadWidget(false);
    } else if (m.type == "invitation") {
      api.invitation = m;
      loadWidget(false);
    } else if (m.type == "licence.status") {
      reception();
    }
    emit(m);
  }
  function reception() {
    api.call({ type: "reception", group: group ? +group : null }).then(function (r) {
      api.reception = r; schedule(); emit({ type: "reception", reception: r });
    }, function () {});
  }
  function schedule() {
    clearTimeout(refresh);
    var at = api.reception && api.reception.nextChange;
    if (at) refresh = setTimeout(reception, Math.max(1000, Math.min(at - Date.now() + 1000, 864e5)));
  }

  function lost() {
    ready = false;
    for (var id in pending) pending[id][1]({ code: "disconnected", message: "connection lost" });
    pending = {};
    emit({ type: "connection", up: false });
    clearTimeout(timer);
    timer = setTimeout(connect, backoff * (0.5 + Math.random()));
    backoff = Math.min(backoff * 2, 30000);
  }
  function connect() {
    if (++fails > 3) { fails = 0; return pageView().then(connect, lost); }
    var q = "?licence=" + licence;
    if (mode == "ws") {
      var opened = false;
      ws = new WebSocket(base.replace(/^http/, "ws") + "ws" + q);
      ws.onopen = function () {
        opened = true; wsFails = 0;
        ws.send(JSON.stringify({ type: "hello", id: "hello", token: api.token, resume: resume(), group: group ? +group : null, language: lang }));
      };
      ws.onmessage = function (e) { receive(JSON.parse(e.data)); };
      ws.onclose = function (e) {
        ws = null;
        if (!opened && ++wsFails >= 2) mode = "sse";
        if (e.code == 4001) fails = 3;
        lost();
      };
    } else {
      var r = resume(), list = [];
      for (var id in r) list.push(id + ":" + r[id]);
      es = new EventSource(base + "livesupport/sse" + q + "&token=" + encodeURIComponent(api.token) +
        "&resume=" + list.join(",") + "&lang=" + lang + (group ? "&group=" + group : ""), { withCredentials: true });
      es.onmessage = function (e) { receive(JSON.parse(e.data)); };
      es.onerror = function () { es.close(); es = null; lost(); };
    }
  }

  function pageView() {
    return post("monitor", {
      licence: +licence, token: api.token || cookie(), url: location.href, title: document.title,
      referrer: document.referrer, group: group, lang: lang
    }).then(function (m) {
      if (m.status != 200) throw m;
      api.visitorId = m.visitorId; api.reception = m.reception; api.look = m.look || {}; api.tokenDays = m.tokenDays;
      remember(m.token, m.tokenDays);
      if (m.invitation) api.invitation = m.invitation;
      if (m.chatId && api.chats.indexOf(m.chatId) < 0) api.chats.push(m.chatId);
      return m;
    });
  }

  function launcher() {
    root = document.createElement("div");
    root.className = "ls-LiveSupportRoot ls-LiveSupport" + String(Math.random()).slice(2, 12);
    var b = document.createElement("button"), look = api.look;
    b.type = "button";
    b.className = "ls-launcher";
    b.setAttribute("aria-haspopup", "dialog");
    b.setAttribute("aria-expanded", "false");
    b.textContent = lang == "pl" ? "Czat" : "Chat";
    b.style.cssText = "position:fixed;bottom:20px;" + (look.position == "left" ? "left" : "right") +
      ":20px;z-index:2147483000;border:0;border-radius:24px;padding:12px 20px;font:600 15px/1 system-ui,sans-serif;" +
      "cursor:pointer;box-shadow:0 2px 8px rgba(0,0,0,.25);background:" + (look.color || "#1f6feb") + ";color:" +
      (look.textColor || "#fff");
    b.onclick = function () { loadWidget(true); };
    root.appendChild(b);
    document.body.appendChild(root);
    api.root = root;
    api.launcher = b;
  }

  function loadWidget(open) {
    if (open) try { sessionStorage.setItem(KEY + "open", "1"); } catch (e) {}
    if (widget) { if (open && api.show) api.show(); return widget; }
    widget = new Promise(function (resolve, reject) {
      var css = document.createElement("link");
      css.rel = "stylesheet";
      css.href = base + "livesupport/widget.css?v=" + api.version;
      document.head.appendChild(css);
      var s = document.createElement("script");
      s.src = base + "livesupport/widget.js?v=" + api.version;
      s.async = true;
      s.onload = function () { window.__livechatWidget(api); resolve(); };
      s.onerror = reject;
      document.head.appendChild(s);
    });
    return widget;
  }

  function start() {
    pageView().then(function () {
      launcher();
      connect();
      var wasOpen = false;
      try { wasOpen = sessionStorage.getItem(KEY + "open") == "1"; } catch (e) {}
      if (wasOpen || api.chats.length || api.invitation) loadWidget(wasOpen);
    }, function (e) {
      console.warn("livechat: not available here (" + (e && e.code || e) + ")");
    });
  }
  document.body ? start() : document.addEventListener("DOMContentLoaded", start);
})();
