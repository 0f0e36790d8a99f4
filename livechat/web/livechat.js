/* livechat loader (the one tag): reports the page view, keeps the visitor's
   connection (WebSocket, else SSE + POST) and each chat's events (a reload
   resumes), draws the launcher, loads the widget when needed. */
(function () {
"use strict";
var D = document, S = JSON.stringify, tag = D.currentScript;
if (!tag) return;
var licence = tag.getAttribute("data-licence") || "";
if (!/^\d{1,10}$/.test(licence)) return console.warn("livechat: no data-licence");
var all = window.__livechat = window.__livechat || {};
if (all[licence]) return;
var group = tag.getAttribute("data-dispatch-to") || null;
var lang = (tag.getAttribute("data-lang") || D.documentElement.lang || navigator.language || "").slice(0, 2).toLowerCase() == "pl" ? "pl" : "en";
var identity, signature = tag.getAttribute("data-signature");
try { identity = signature && JSON.parse(tag.getAttribute("data-identity")); } catch (e) {}
var base = tag.src.replace(/(livechat\.js|livesupport\/lib\/livesupport\.js)([?#].*)?$/, "");
var KEY = "livechat:" + licence + ":", COOKIE = "lcv" + licence;
var https = location.protocol == "https:";
var listeners = [], seen = {}, pending = {}, outbox = [], n = 0;
var ws, es, ready = false, mode = window.WebSocket ? "ws" : "sse";
var wsFails = 0, fails = 0, backoff = 1000, timer, widget, refresh;

function get(k) { try { return JSON.parse(localStorage.getItem(KEY + k)); } catch (e) { return null; } }
function put(k, v) {
  try { v == null ? localStorage.removeItem(KEY + k) : localStorage.setItem(KEY + k, S(v)); } catch (e) {}
}
function cookie() {
  var m = D.cookie.match(new RegExp("(?:^|; )" + COOKIE + "=([^;]*)"));
  return m ? decodeURIComponent(m[1]) : "";
}
function remember(token, days) {
  api.token = token;
  D.cookie = COOKIE + "=" + encodeURIComponent(token) + "; path=/; max-age=" + (days || 365) * 86400 +
    "; SameSite=Lax" + (https ? "; Secure" : "");
}
function emit(m) { listeners.forEach(function (f) { try { f(m); } catch (e) { console.error(e); } }); }
function post(path, body) {
  return fetch(base + "livesupport/" + path, {
    method: "POST", credentials: "include", headers: { "Content-Type": "text/plain" }, body: S(body)
  }).then(function (r) { return r.json().then(function (j) { j.status = r.status; return j; }); });
}

var api = all[licence] = {
  licence: +licence, group: group, lang: lang, base: base, version: "__WIDGET_VERSION__",
  token: "", visitorId: "", reception: null, chats: [], invitation: null, look: {},
  on: function (f) { listeners.push(f); },
  /* a request (docs/events.md): a Promise of its result */
  call: function (req) {
    return new Promise(function (resolve, reject) {
      var p = [resolve, reject, req];
      if (mode != "ws") return viaPost(p);
      req.id = "r" + ++n;
      pending[req.id] = p;
      ready ? ws.send(S(req)) : outbox.push(req);
    });
  },
  chat: function (id) { return get("chat:" + id) || { id: id, last: 0, events: [], read: 0 }; },
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
  var p = pending[m.id]; /* reply, error or sent event */
  if (p) { delete pending[m.id]; m.type == "error" ? p[1](m) : p[0](m.result || m); }
  if (m.type == "reply" || m.type == "error") return;
  if (m.type == "welcome") {
    ready = true; fails = 0; backoff = 1000;
    remember(m.token, api.tokenDays);
    api.chats = m.chats; api.reception = m.reception;
    if (m.invitation) api.invitation = m.invitation;
    if (api.chats.length && !api.current()) api.setCurrent(api.chats[api.chats.length - 1]);
    while (outbox.length) ws.send(S(outbox.shift()));
    schedule();
    if (api.chats.length || api.invitation) loadWidget(false);
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
  if (at) refresh = setTimeout(reception, Math.min(Math.max(at - Date.now(), 0) + 1000, 864e5));
}

function drop() {
  if (ws) { ws.onclose = null; ws.close(); ws = null; }
  lost();
}
function viaPost(p) {
  var body = { licence: +licence, token: api.token, group: group, language: lang };
  for (var k in p[2]) body[k] = p[2][k];
  post("call", body).then(function (m) { m.type == "reply" ? p[0](m.result) : p[1](m); },
    function () { p[1]({ code: "disconnected" }); });
}
function lost() {
  ready = false;
  /* sent and unanswered: unknown, so refused; not yet sent: kept, or posted */
  for (var id in pending) if (outbox.indexOf(pending[id][2]) < 0) { pending[id][1]({ code: "disconnected" }); delete pending[id]; }
  if (mode != "ws") { outbox.forEach(function (r) { viaPost(pending[r.id]); }); outbox = []; pending = {}; }
  emit({ type: "connection" });
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
      ws.send(S({ type: "hello", id: "hello", token: api.token, resume: resume(), group: group ? +group : null, language: lang }));
    };
    ws.onmessage = function (e) { receive(JSON.parse(e.data)); };
    ws.onclose = function (e) {
      if (!opened && ++wsFails > 1) mode = "sse";
      if (e.code == 4001) fails = 3;
      drop();
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

setInterval(function () {
  if (!ready || mode != "ws" || !api.chats.length) return;
  var t = setTimeout(drop, 1e4);
  api.call({ type: "ping" }).then(function () { clearTimeout(t); }, function () {});
}, 3e4);

function pageView() {
  var view = {
    licence: +licence, token: api.token || cookie(), url: location.href, title: D.title,
    referrer: D.referrer, group: group, lang: lang
  };
  if (identity) view.identity = identity, view.signature = signature;
  return post("monitor", view).then(function (m) {
    if (m.status != 200) throw m;
    api.visitorId = m.visitorId; api.reception = m.reception; api.look = m.look || {}; api.tokenDays = m.tokenDays;
    remember(m.token, m.tokenDays);
    if (m.invitation) api.invitation = m.invitation;
    if (m.chatId && api.chats.indexOf(m.chatId) < 0) api.chats.push(m.chatId);
    return m;
  });
}

function make(tag, cls) { var e = D.createElement(tag); e.className = cls; return e; }
function launcher() {
  var root = make("div", "ls-LiveSupportRoot ls-LiveSupport" + String(Math.random()).slice(2, 12));
  var b = make("button", "ls-launcher"), look = api.look;
  b.type = "button";
  b.setAttribute("aria-haspopup", "dialog");
  b.setAttribute("aria-expanded", "false");
  b.textContent = lang == "pl" ? "Czat" : "Chat";
  b.style.cssText = "position:fixed;bottom:20px;" + (look.position || "right") + ":20px;z-index:2147483000;border:0;" +
    "border-radius:24px;padding:12px 20px;font:600 15px/1 sans-serif;cursor:pointer;background:" +
    (look.color || "#1f6feb") + ";color:" + (look.textColor || "#fff");
  b.onclick = function () { loadWidget(true); };
  root.appendChild(b);
  D.body.appendChild(root);
  api.root = root;
  api.launcher = b;
}

function loadWidget(open) {
  if (open) try { sessionStorage.setItem(KEY + "open", "1"); } catch (e) {}
  if (widget) { if (open && api.show) api.show(); return widget; }
  widget = new Promise(function (resolve, reject) {
    var css = make("link", ""), s = make("script", ""), v = "?v=" + api.version;
    css.rel = "stylesheet";
    css.href = base + "livesupport/widget.css" + v;
    s.src = base + "livesupport/widget.js" + v;
    s.onload = function () { window.__livechatWidget(api); resolve(); };
    s.onerror = reject;
    D.head.appendChild(css);
    D.head.appendChild(s);
  });
  return widget;
}

function start() {
  pageView().then(function () {
    launcher();
    connect();
    var was = false;
    try { was = !!sessionStorage.getItem(KEY + "open"); } catch (e) {}
    if (was || api.chats.length || api.invitation) loadWidget(was);
  }, function (e) { console.warn("livechat: not here (" + (e && e.code || e) + ")"); });
}
D.body ? start() : D.addEventListener("DOMContentLoaded", start);
})();
