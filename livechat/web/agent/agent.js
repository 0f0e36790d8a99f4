/* livechat web agent: plain JavaScript, no framework, no build step.
 * Speaks the core's event vocabulary over /agent/ws (docs/agent.md,
 * docs/events.md).  Text is always rendered as text; only http(s) links
 * become clickable.  It reconnects by itself with backoff and resumes every
 * open chat from the last sequence it saw. */
(function () {
  "use strict";

  var STATUS_NAMES = ["online", "away", "offline", "text_available", "voice_available", "invisible"];
  var LINK = /\bhttps?:\/\/[^\s<>"']+/g;
  var $ = function (id) { return document.getElementById(id); };

  var state = {
    session: null,        // GET session: who, csrfToken
    ws: null,
    connected: false,
    backoff: 1000,
    requests: {},         // id -> {resolve, reject}
    nextId: 1,
    status: null,         // the seed's number, once known
    chats: {},            // chatId -> chat view
    lastSeq: {},          // chatId -> last sequence seen (resume)
    activeChat: null,
    teamChatId: null,
    operators: {},        // id -> operator
    groups: [],
    visitors: {},         // visitorId -> visitor
    offers: {},           // chatId -> offer element
    canned: [],
    limits: { maxMessageLength: 4000 },
    ended: false
  };
  window.__agent = state;  // for the curious (and the tests)

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  /* Text with http(s) links made clickable; never HTML. */
  function linkify(text) {
    var frag = document.createDocumentFragment(), last = 0, m;
    LINK.lastIndex = 0;
    while ((m = LINK.exec(text))) {
      var url = m[0].replace(/[.,;:!?)\]]+$/, "");
      frag.appendChild(document.createTextNode(text.slice(last, m.index)));
      var ok = false;
      try { ok = /^https?:$/.test(new URL(url).protocol); } catch (e) {}
      if (ok) {
        var a = el("a", "link", url);
        a.href = url;
        a.target = "_blank";
        a.rel = "noopener noreferrer nofollow ugc";
        frag.appendChild(a);
      } else {
        frag.appendChild(document.createTextNode(url));
      }
      last = m.index + url.length;
      LINK.lastIndex = last;
    }
    frag.appendChild(document.createTextNode(text.slice(last)));
    return frag;
  }

  function ago(ms) {
    var s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  function clock(ms) {
    var d = new Date(ms);
    return ("0" + d.getHours()).slice(-2) + ":" + ("0" + d.getMinutes()).slice(-2);
  }

  // -- HTTP (JSON, with the CSRF token) -------------------------------------------------

  function http(method, path, body) {
    var headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (state.session && method !== "GET") headers["X-CSRF-Token"] = state.session.csrfToken;
    return fetch(path, {
      method: method, headers: headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) {
          var e = new Error(data.message || ("HTTP " + r.status));
          e.status = r.status; e.code = data.error;
          throw e;
        }
        return data;
      });
    });
  }

  // -- login and out -------------------------------------------------------------------

  function showLogin(message) {
    state.session = null;
    state.ended = true;
    if (state.ws) { try { state.ws.close(); } catch (e) {} }
    $("loading").hidden = true;
    $("app").hidden = true;
    $("login-view").hidden = false;
    $("login-error").textContent = message || "";
    $("login-licence").focus();
  }

  function showApp() {
    $("loading").hidden = true;
    $("login-view").hidden = true;
    $("app").hidden = false;
    var op = state.session.operator;
    $("me").textContent = op.name + " (" + op.nick + ") · licence " + state.session.licence;
    $("canned-scope").disabled = !op.isAdmin;
    state.ended = false;
    loadCanned();
    connect();
  }

  $("login-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var licence = $("login-licence").value.trim(), nick = $("login-nick").value.trim();
    var password = $("login-password").value;
    if (!licence || !nick || !password) {
      $("login-error").textContent = "Licence number, nick and password are needed.";
      return;
    }
    $("login-submit").disabled = true;
    http("POST", "login", { licence: licence, nick: nick, password: password })
      .then(function (session) {
        $("login-password").value = "";
        state.session = session;
        showApp();
      })
      .catch(function (e) {
        $("login-error").textContent = e.message;
        $("login-password").focus();
      })
      .then(function () { $("login-submit").disabled = false; });
  });

  $("logout").addEventListener("click", function () {
    http("POST", "logout", {}).catch(function () {}).then(function () { showLogin("You logged out."); });
  });
  $("logout-all").addEventListener("click", function () {
    http("POST", "logout-everywhere", {}).catch(function () {}).then(function () {
      showLogin("You logged out everywhere.");
    });
  });

  // -- the WebSocket -----------------------------------------------------------------------

  function setConn(text, down) {
    $("conn").textContent = text;
    $("conn").className = "conn" + (down ? " down" : "");
  }

  function connect() {
    if (state.ended) return;
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/agent/ws";
    var ws = new WebSocket(url);
    state.ws = ws;
    setConn("Connecting…", true);
    ws.onopen = function () {
      var resume = {};
      Object.keys(state.lastSeq).forEach(function (id) { resume[id] = state.lastSeq[id]; });
      var hello = { type: "hello", id: "hello", resume: resume };
      if (state.status !== null) hello.status = state.status;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = function (ev) {
      var m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      handle(m);
    };
    ws.onclose = function (ev) {
      if (state.ws !== ws) return;
      state.connected = false;
      state.ws = null;
      Object.keys(state.requests).forEach(function (id) {
        state.requests[id].reject(new Error("disconnected"));
      });
      state.requests = {};
      if (state.ended) return;
      if (ev.code === 4001 || ev.code === 1006 && !state.session) {
        checkSession();
        return;
      }
      var wait = Math.min(30000, state.backoff) * (0.75 + Math.random() / 2);
      state.backoff = Math.min(30000, state.backoff * 2);
      setConn("Reconnecting…", true);
      setTimeout(function () {
        // A refused handshake (401) looks like any close: ask who we are first.
        http("GET", "session").then(function (s) { state.session = s; connect(); })
          .catch(function (e) { if (e.status === 401) showLogin("Your session has ended; log in again."); else connect(); });
      }, wait);
    };
  }

  function checkSession() {
    http("GET", "session").then(function (s) { state.session = s; connect(); })
      .catch(function () { showLogin("Your session has ended; log in again."); });
  }

  function call(type, fields) {
    return new Promise(function (resolve, reject) {
      if (!state.ws || !state.connected) { reject(new Error("not connected")); return; }
      var id = "r" + (state.nextId++), msg = { type: type, id: id };
      for (var k in fields) msg[k] = fields[k];
      state.requests[id] = { resolve: resolve, reject: reject };
      state.ws.send(JSON.stringify(msg));
    });
  }

  function report(e) { setConn(e.message, true); setTimeout(function () { if (state.connected) setConn("Connected"); }, 4000); }

  // -- messages from the server ------------------------------------------------------------

  function handle(m) {
    switch (m.type) {
      case "reply":
      case "error":
        var waiting = state.requests[m.id];
        if (waiting) {
          delete state.requests[m.id];
          if (m.type === "reply") waiting.resolve(m.result);
          else { var e = new Error(m.message); e.code = m.code; waiting.reject(e); }
        }
        return;
      case "welcome": return welcome(m);
      case "chat.event": return chatEvent(m);
      case "chat.opened": return chatOpened(m);
      case "chat.offered": return offered(m);
      case "chat.withdrawn": return removeOffer(m.chatId);
      case "conference.invited": return conferenceInvited(m);
      case "visitor.update": return visitorUpdate(m.visitor);
      case "visitor.gone": delete state.visitors[m.visitorId]; return renderVisitors();
      case "operator.status": return operatorStatus(m.operator);
      case "session.ended": state.ended = true; return showLogin("Your session has ended; log in again.");
      default: return;
    }
  }

  function welcome(m) {
    state.connected = true;
    state.backoff = 1000;
    setConn("Connected");
    state.session = m.session;
    state.limits = m.limits || state.limits;
    state.groups = m.groups || [];
    state.status = m.status;
    $("status").value = STATUS_NAMES[m.status] || "online";
    state.operators = {};
    (m.operators || []).forEach(function (o) { state.operators[o.id] = o; });
    renderOperators();
    state.visitors = {};
    (m.visitors || []).forEach(function (v) { state.visitors[v.id] = v; });
    renderVisitors();
    state.teamChatId = m.teamChatId;
    if (m.teamChatId) ensureChat(m.teamChatId, { kind: "team", title: "Team" });
    var open = {};
    (m.chats || []).forEach(function (c) {
      open[c.chatId] = true;
      ensureChat(c.chatId, infoTitle(c));
    });
    Object.keys(state.chats).forEach(function (id) {
      var view = state.chats[id];
      if (!open[id] && +id !== m.teamChatId && !view.ended) {
        endChat(view, "This chat ended while you were away. Its transcript is in the search panel.");
      }
    });
    refreshSelects();
    if (state.activeChat === null && m.teamChatId) selectChat(m.teamChatId);
  }

  function infoTitle(c) {
    if (c.kind === "team") return { kind: "team", title: "Team" };
    if (c.kind === "private") return { kind: "private", title: "Private chat" };
    return { kind: c.kind, title: c.name || "Visitor", visitorId: c.visitorId };
  }

  // -- visitors -------------------------------------------------------------------------------

  function visitorUpdate(v) {
    state.visitors[v.id] = v;
    renderVisitors();
  }

  function renderVisitors() {
    var list = $("visitors"), ids = Object.keys(state.visitors);
    $("visitor-count").textContent = ids.length;
    list.textContent = "";
    ids.sort(function (a, b) { return (state.visitors[b].lastSeen || 0) - (state.visitors[a].lastSeen || 0); });
    ids.forEach(function (id) {
      var v = state.visitors[id], li = el("li", "visitor");
      li.dataset.visitor = id;
      var who = (v.identity && (v.identity.name || v.identity.email)) || "Visitor " + id.slice(0, 6);
      var name = el("div", "name", who);
      if (v.identity && v.identity.verified) name.appendChild(el("span", "verified", " ✔"));
      li.appendChild(name);
      li.appendChild(el("div", "url", (v.title ? v.title + " — " : "") + (v.url || "")));
      if (v.referrer) li.appendChild(el("div", "ref", "from " + v.referrer));
      var badges = el("div", "badges");
      badges.appendChild(el("span", v.returning ? "returning" : "new", v.returning ? "returning (" + v.visits + " visits)" : "new"));
      badges.appendChild(el("span", "pages", v.pages + (v.pages === 1 ? " page" : " pages")));
      badges.appendChild(el("span", "time", ago(v.visitStarted || v.firstSeen || Date.now()) + " on site"));
      if (v.chatId) badges.appendChild(el("span", "chatting", "chatting"));
      if (v.invitation) badges.appendChild(el("span", "invited", "invitation " + v.invitation));
      li.appendChild(badges);
      var actions = el("div", "actions");
      var invite = el("button", "invite", "Invite");
      invite.type = "button";
      invite.setAttribute("aria-label", "Invite " + who + " to chat");
      invite.disabled = !!v.chatId || v.invitation === "sent";
      invite.addEventListener("click", function () {
        call("visitor.invite", { visitorId: id, message: $("invite-message").value })
          .then(function () { invite.disabled = true; }).catch(report);
      });
      actions.appendChild(invite);
      var hist = el("button", "secondary history-button", "History");
      hist.type = "button";
      hist.setAttribute("aria-label", "Past chats of " + who);
      hist.addEventListener("click", function () { showHistory(id, who); });
      actions.appendChild(hist);
      li.appendChild(actions);
      list.appendChild(li);
    });
  }
  setInterval(function () { if (state.connected) renderVisitors(); }, 30000);

  // -- operators --------------------------------------------------------------------------------

  function operatorStatus(o) {
    var id = +String(o.id).replace("op:", "");
    var known = state.operators[id] || { id: id, ref: o.id, nick: o.nick, name: o.name };
    known.status = o.status;
    state.operators[id] = known;
    if (state.session && id === state.session.operator.id) {
      state.status = o.status;
      $("status").value = STATUS_NAMES[o.status] || "online";
    }
    renderOperators();
    refreshSelects();
  }

  function renderOperators() {
    var list = $("operators");
    list.textContent = "";
    Object.keys(state.operators).forEach(function (id) {
      var o = state.operators[id];
      if (state.session && +id === state.session.operator.id) return;
      var li = el("li", "operator");
      li.dataset.operator = id;
      var dot = el("span", "dot s" + o.status);
      dot.setAttribute("aria-hidden", "true");
      li.appendChild(dot);
      li.appendChild(el("span", "nick", o.name + " · " + (STATUS_NAMES[o.status] || "").replace("_", " ")));
      var actions = el("span", "actions");
      var talk = el("button", "secondary private", "Message");
      talk.type = "button";
      talk.setAttribute("aria-label", "Private chat with " + o.name);
      talk.addEventListener("click", function () {
        call("private.open", { operatorId: +id }).then(function (r) {
          ensureChat(r.chatId, { kind: "private", title: o.name });
          selectChat(r.chatId);
        }).catch(report);
      });
      actions.appendChild(talk);
      li.appendChild(actions);
      list.appendChild(li);
    });
  }

  $("status").addEventListener("change", function () {
    var wanted = $("status").value;
    call("status.set", { status: wanted }).then(function (r) { state.status = r.status; }).catch(report);
  });

  // -- offers (incoming chats) -------------------------------------------------------------------

  function beep() {
    try {
      var Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return;
      state.audio = state.audio || new Ctx();
      var ctx = state.audio, osc = ctx.createOscillator(), gain = ctx.createGain();
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.15, ctx.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + 0.25);
      osc.connect(gain); gain.connect(ctx.destination);
      osc.start(); osc.stop(ctx.currentTime + 0.25);
    } catch (e) {}
  }

  function notify(title, body) {
    beep();
    try {
      if (window.Notification && Notification.permission === "granted" && document.visibilityState !== "visible") {
        new Notification(title, { body: body });
      }
    } catch (e) {}
  }

  $("notify-enable").addEventListener("click", function () {
    if (window.Notification && Notification.requestPermission) Notification.requestPermission();
    beep();
  });

  function offered(m) {
    removeOffer(m.chatId);
    var li = el("li", "offer");
    li.dataset.chat = m.chatId;
    var who = m.name || "A visitor";
    li.appendChild(el("div", "name", who + (m.email ? " <" + m.email + ">" : "")));
    if (m.firstMessage) li.appendChild(el("div", "first", m.firstMessage));
    if (m.visitor && m.visitor.url) li.appendChild(el("div", "small", m.visitor.url));
    var actions = el("div", "actions");
    var accept = el("button", "accept", "Accept");
    accept.type = "button";
    accept.setAttribute("aria-label", "Accept the chat with " + who);
    accept.addEventListener("click", function () {
      accept.disabled = true;
      ensureChat(m.chatId, { kind: "visitor", title: who, visitorId: m.visitor && m.visitor.id });
      call("chat.accept", { chatId: m.chatId })
        .then(function () { removeOffer(m.chatId); selectChat(m.chatId); })
        .catch(function (e) { removeOffer(m.chatId); report(e); });
    });
    var decline = el("button", "secondary decline", "Decline");
    decline.type = "button";
    decline.addEventListener("click", function () {
      call("chat.decline", { chatId: m.chatId }).catch(report).then(function () { removeOffer(m.chatId); });
    });
    actions.appendChild(accept); actions.appendChild(decline);
    li.appendChild(actions);
    $("offers").appendChild(li);
    state.offers[m.chatId] = li;
    updateOfferCount();
    notify("New chat: " + who, m.firstMessage || "");
  }

  function conferenceInvited(m) {
    removeOffer(m.chatId);
    var li = el("li", "offer conference");
    li.dataset.chat = m.chatId;
    var by = (m.by && m.by.name) || "A colleague";
    li.appendChild(el("div", "name", by + " invites you to a chat"));
    var join = el("button", "join", "Join");
    join.type = "button";
    join.addEventListener("click", function () {
      join.disabled = true;
      ensureChat(m.chatId, { kind: "visitor", title: "Conference" });
      call("chat.join", { chatId: m.chatId }).then(function () { removeOffer(m.chatId); selectChat(m.chatId); })
        .catch(function (e) { removeOffer(m.chatId); report(e); });
    });
    var actions = el("div", "actions");
    actions.appendChild(join);
    li.appendChild(actions);
    $("offers").appendChild(li);
    state.offers[m.chatId] = li;
    updateOfferCount();
    notify(by + " invites you to a chat", "");
  }

  function removeOffer(chatId) {
    var li = state.offers[chatId];
    if (li) { li.remove(); delete state.offers[chatId]; }
    updateOfferCount();
  }

  function updateOfferCount() {
    var n = Object.keys(state.offers).length;
    $("offer-count").textContent = n ? n : "";
    $("offers-empty").hidden = n > 0;
  }

  // -- chats: tabs and panels ---------------------------------------------------------------------

  function chatOpened(m) {
    var view = ensureChat(m.chatId, { kind: m.kind, title: m.kind === "private" ? "Private chat" : "Chat" });
    if (view.ended) reopen(view);
    if (m.kind === "private" && m.with) {
      m.with.forEach(function (ref) {
        var id = +String(ref).replace("op:", "");
        if (state.session && id !== state.session.operator.id && state.operators[id]) {
          setTitle(view, state.operators[id].name);
        }
      });
    }
    if (m.kind === "visitor") {
      call("chat.info", { chatId: m.chatId }).then(function (info) {
        setTitle(view, info.name || "Visitor");
        view.visitorId = info.visitorId;
      }).catch(function () {});
    }
    if (m.transferredBy) notify("Chat transferred to you", "by " + m.transferredBy.name);
    if (state.activeChat === null || state.activeChat === state.teamChatId) selectChat(m.chatId);
  }

  function ensureChat(chatId, info) {
    chatId = +chatId;
    var view = state.chats[chatId];
    if (view) return view;
    view = { id: chatId, kind: info.kind, title: info.title, visitorId: info.visitorId, unread: 0, ended: false,
             typingTimer: null, composing: false, pending: [], mine: {} };
    state.chats[chatId] = view;
    if (!(chatId in state.lastSeq)) state.lastSeq[chatId] = 0;

    var tab = el("button", "tab");
    tab.type = "button";
    tab.id = "tab-" + chatId;
    tab.dataset.chat = chatId;
    tab.setAttribute("role", "tab");
    tab.setAttribute("aria-controls", "chat-" + chatId);
    tab.setAttribute("aria-selected", "false");
    tab.tabIndex = -1;
    view.tabLabel = el("span", "label", info.title);
    tab.appendChild(view.tabLabel);
    view.badge = el("span", "unread");
    view.badge.hidden = true;
    tab.appendChild(view.badge);
    tab.addEventListener("click", function () { selectChat(chatId); });
    tab.addEventListener("keydown", tabKeys);
    view.tab = tab;
    $("tabs").appendChild(tab);

    var panel = el("div", "chat");
    panel.id = "chat-" + chatId;
    panel.dataset.chat = chatId;
    panel.setAttribute("role", "tabpanel");
    panel.setAttribute("aria-labelledby", tab.id);
    panel.hidden = true;

    var head = el("div", "chat-head");
    view.titleEl = el("span", "title", info.title);
    head.appendChild(view.titleEl);
    if (info.kind === "visitor") {
      var transferTo = el("select", "transfer-to");
      transferTo.setAttribute("aria-label", "Transfer to");
      var transfer = el("button", "secondary transfer", "Transfer");
      transfer.type = "button";
      transfer.addEventListener("click", function () {
        var value = transferTo.value;
        if (!value) return;
        var fields = { chatId: chatId };
        if (value.indexOf("g:") === 0) fields.groupId = +value.slice(2); else fields.operatorId = +value.slice(3);
        call("chat.transfer", fields).catch(report);
      });
      var inviteWho = el("select", "invite-who");
      inviteWho.setAttribute("aria-label", "Invite a colleague");
      var invite = el("button", "secondary invite-colleague", "Invite");
      invite.type = "button";
      invite.addEventListener("click", function () {
        if (!inviteWho.value) return;
        call("chat.invite", { chatId: chatId, operatorId: +inviteWho.value.slice(3) })
          .then(function () { systemLine(view, "Invitation sent."); }).catch(report);
      });
      var hist = el("button", "secondary history-button", "History");
      hist.type = "button";
      hist.addEventListener("click", function () { if (view.visitorId) showHistory(view.visitorId, view.title); });
      var close = el("button", "danger close-chat", "Close chat");
      close.type = "button";
      close.addEventListener("click", function () { call("chat.close", { chatId: chatId }).catch(report); });
      view.transferTo = transferTo; view.inviteWho = inviteWho;
      [transferTo, transfer, inviteWho, invite, hist, close].forEach(function (x) { head.appendChild(x); });
    }
    var dismiss = el("button", "secondary dismiss", "Remove tab");
    dismiss.type = "button";
    dismiss.hidden = true;
    dismiss.addEventListener("click", function () { removeChat(chatId); });
    view.dismiss = dismiss;
    head.appendChild(dismiss);
    panel.appendChild(head);

    view.log = el("ol", "log");
    view.log.setAttribute("aria-live", "polite");
    view.log.setAttribute("aria-label", "Messages");
    panel.appendChild(view.log);
    view.typing = el("div", "typing");
    view.typing.setAttribute("aria-live", "polite");
    panel.appendChild(view.typing);

    var form = el("form", "compose");
    var label = el("label", "sr-only", "Message");
    var area = el("textarea");
    area.id = "compose-" + chatId;
    label.htmlFor = area.id;
    area.maxLength = state.limits.maxMessageLength;
    area.placeholder = "Type a message; Enter sends, Shift+Enter for a new line, /shortcut + Tab for a canned response";
    var pick = el("select", "canned-pick");
    pick.setAttribute("aria-label", "Insert a canned response");
    var send = el("button", "send", "Send");
    send.type = "submit";
    form.appendChild(label); form.appendChild(area); form.appendChild(pick); form.appendChild(send);
    view.form = form; view.area = area; view.pick = pick;
    fillCannedPick(pick);
    pick.addEventListener("change", function () {
      var c = cannedById(pick.value);
      if (c) { area.value += (area.value && !/\s$/.test(area.value) ? " " : "") + c.text; area.focus(); typed(view); }
      pick.value = "";
    });
    area.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); form.requestSubmit(); }
      else if (ev.key === "Tab" && expandShortcut(area)) { ev.preventDefault(); }
    });
    area.addEventListener("input", function () { typed(view); });
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var text = area.value;
      if (!text.trim()) return;
      send.disabled = true;
      call("chat.send", { chatId: chatId, text: text })
        .then(function (r) { area.value = ""; view.mine[r.sequence] = true; stopTyping(view); })
        .catch(report)
        .then(function () { send.disabled = false; area.focus(); });
    });
    panel.appendChild(form);
    view.note = el("div", "ended-note");
    view.note.hidden = true;
    panel.appendChild(view.note);
    view.panel = panel;
    $("panels").appendChild(panel);
    refreshSelects();
    return view;
  }

  function setTitle(view, title) {
    view.title = title;
    view.tabLabel.textContent = title;
    view.titleEl.textContent = title;
  }

  function tabKeys(ev) {
    var tabs = Array.prototype.slice.call($("tabs").querySelectorAll(".tab"));
    var i = tabs.indexOf(ev.currentTarget);
    if (ev.key === "ArrowRight" || ev.key === "ArrowLeft") {
      ev.preventDefault();
      var next = tabs[(i + (ev.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
      selectChat(+next.dataset.chat);
      next.focus();
    }
  }

  function selectChat(chatId) {
    chatId = +chatId;
    Object.keys(state.chats).forEach(function (id) {
      var v = state.chats[id], on = +id === chatId;
      v.panel.hidden = !on;
      v.tab.setAttribute("aria-selected", on ? "true" : "false");
      v.tab.tabIndex = on ? 0 : -1;
    });
    state.activeChat = chatId;
    var view = state.chats[chatId];
    if (view) { view.unread = 0; view.badge.hidden = true; markRead(view); }
  }

  function removeChat(chatId) {
    var view = state.chats[chatId];
    if (!view) return;
    view.tab.remove(); view.panel.remove();
    delete state.chats[chatId];
    delete state.lastSeq[chatId];
    if (state.activeChat === chatId) {
      state.activeChat = null;
      var first = Object.keys(state.chats)[0];
      if (first) selectChat(first);
    }
  }

  function endChat(view, note) {
    view.ended = true;
    view.form.hidden = true;
    view.note.hidden = false;
    view.note.textContent = note;
    view.tab.classList.add("ended");
    view.dismiss.hidden = false;
    view.typing.textContent = "";
    view.panel.querySelectorAll(".chat-head select, .chat-head button:not(.dismiss):not(.history-button)")
      .forEach(function (b) { b.disabled = true; });
  }

  function reopen(view) {
    view.ended = false;
    view.form.hidden = false;
    view.note.hidden = true;
    view.tab.classList.remove("ended");
    view.dismiss.hidden = true;
    view.panel.querySelectorAll(".chat-head select, .chat-head button").forEach(function (b) { b.disabled = false; });
  }

  function systemLine(view, text) {
    var li = el("li", "event", text);
    view.log.appendChild(li);
    view.log.scrollTop = view.log.scrollHeight;
  }

  function isMe(ref) { return state.session && ref === "op:" + state.session.operator.id; }

  function chatEvent(m) {
    var view = state.chats[m.chatId];
    if (!view) view = ensureChat(m.chatId, { kind: "visitor", title: "Chat" });
    var e = m.event, who = (m.originatorMetadata && m.originatorMetadata.name) || "";
    if (m.sequence === undefined) {  // typing: not stored
      if (isMe(m.originatorId)) return;
      view.typing.textContent = e.chatState === "COMPOSING" ? who + " is typing…" : "";
      return;
    }
    if (m.sequence <= (state.lastSeq[m.chatId] || 0)) return;  // seen already
    state.lastSeq[m.chatId] = m.sequence;
    var mine = isMe(m.originatorId);
    switch (e.type) {
      case "ContentEvent":
        if (!mine) view.typing.textContent = "";
        var li = el("li", "msg " + (mine ? "mine" : "theirs"));
        li.dataset.seq = m.sequence;
        li.dataset.from = m.originatorId;
        li.appendChild(el("span", "who", (mine ? "You" : who) + " · " + clock(m.serverTimestamp)));
        var text = el("span", "text");
        text.appendChild(linkify(e.message || ""));
        li.appendChild(text);
        view.log.appendChild(li);
        if (!mine) {
          view.pending.push(m.sequence);
          if (state.activeChat === m.chatId && document.visibilityState === "visible") markRead(view);
          else { view.unread++; view.badge.textContent = view.unread; view.badge.hidden = false; }
          if (document.visibilityState !== "visible" && view.kind === "visitor") notify(who, e.message || "");
        }
        break;
      case "AcceptStatusEvent":
        if (!mine && e.status === "READ") {
          (e.sequenceList || []).forEach(function (seq) {
            var target = view.log.querySelector('.msg.mine[data-seq="' + seq + '"]');
            if (target && !target.querySelector(".read")) target.appendChild(el("span", "read", "Read"));
          });
        }
        break;
      case "JoinEvent":
        if (view.kind === "visitor" || !mine) systemLine(view, e.participant.name + " joined the chat.");
        break;
      case "LeaveEvent":
        if (mine && e.reason === "transfer") { systemLine(view, "You transferred the chat."); endChat(view, "Transferred."); }
        else if (mine) { systemLine(view, "You left the chat."); endChat(view, "You left this chat."); }
        else systemLine(view, e.participant.name + " left the chat" + (e.reason === "transfer" ? " (transfer)." : "."));
        break;
      case "TransferEvent":
        var to = e.toOperator ? e.toOperator.name : "a group";
        systemLine(view, (e.from ? e.from.name : "Someone") + " transferred the chat to " + to + ".");
        break;
      case "InviteEvent":
        systemLine(view, e.invited.name + " was invited to the chat.");
        break;
      case "CloseEvent":
        systemLine(view, "The chat was closed (" + String(e.reason || "").replace("_", " ") + ").");
        endChat(view, "This chat is closed.");
        break;
      default:
        break;
    }
    view.log.scrollTop = view.log.scrollHeight;
  }

  function markRead(view) {
    if (!view.pending.length || view.ended || !state.connected) return;
    var seqs = view.pending.splice(0, 200);
    call("chat.read", { chatId: view.id, sequences: seqs }).catch(function () {});
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && state.activeChat !== null && state.chats[state.activeChat]) {
      markRead(state.chats[state.activeChat]);
    }
  });

  /* Typing: COMPOSING when typing starts (again at most every 3 s), PAUSE after 2 s still. */
  function typed(view) {
    if (view.ended) return;
    var now = Date.now();
    if (!view.composing || now - (view.composedAt || 0) > 3000) {
      view.composing = true;
      view.composedAt = now;
      call("chat.state", { chatId: view.id, state: "COMPOSING" }).catch(function () {});
    }
    clearTimeout(view.typingTimer);
    view.typingTimer = setTimeout(function () { stopTyping(view); }, 2000);
  }

  function stopTyping(view) {
    clearTimeout(view.typingTimer);
    if (!view.composing) return;
    view.composing = false;
    call("chat.state", { chatId: view.id, state: "PAUSE" }).catch(function () {});
  }

  function refreshSelects() {
    Object.keys(state.chats).forEach(function (id) {
      var view = state.chats[id];
      if (!view.transferTo) return;
      fillOperators(view.transferTo, "Transfer to…", true);
      fillOperators(view.inviteWho, "Invite a colleague…", false);
    });
  }

  function fillOperators(select, prompt, withGroups) {
    var keep = select.value;
    select.textContent = "";
    var first = el("option", null, prompt);
    first.value = "";
    select.appendChild(first);
    Object.keys(state.operators).forEach(function (id) {
      var o = state.operators[id];
      if (state.session && +id === state.session.operator.id) return;
      var opt = el("option", null, o.name + " (" + (STATUS_NAMES[o.status] || "").replace("_", " ") + ")");
      opt.value = "op:" + id;
      select.appendChild(opt);
    });
    if (withGroups) {
      state.groups.forEach(function (g) {
        var opt = el("option", null, "Group: " + g.name);
        opt.value = "g:" + g.id;
        select.appendChild(opt);
      });
    }
    select.value = keep;
  }

  // -- canned responses --------------------------------------------------------------------------

  function loadCanned() {
    return http("GET", "api/canned").then(function (r) { state.canned = r.canned; renderCanned(); }).catch(function () {});
  }

  function cannedById(id) {
    for (var i = 0; i < state.canned.length; i++) if (String(state.canned[i].id) === String(id)) return state.canned[i];
    return null;
  }

  function expandShortcut(area) {
    var before = area.value.slice(0, area.selectionStart), m = /(^|\s)\/([A-Za-z0-9_-]+)$/.exec(before);
    if (!m) return false;
    var found = null;
    state.canned.forEach(function (c) { if (c.shortcut === m[2] && !found) found = c; });
    if (!found) return false;
    var start = before.length - m[2].length - 1;
    area.value = area.value.slice(0, start) + found.text + area.value.slice(area.selectionStart);
    area.selectionStart = area.selectionEnd = start + found.text.length;
    return true;
  }

  function fillCannedPick(pick) {
    pick.textContent = "";
    var first = el("option", null, "Canned response…");
    first.value = "";
    pick.appendChild(first);
    state.canned.forEach(function (c) {
      var opt = el("option", null, "/" + c.shortcut + " — " + c.text.slice(0, 40));
      opt.value = c.id;
      pick.appendChild(opt);
    });
  }

  function renderCanned() {
    var list = $("canned");
    list.textContent = "";
    state.canned.forEach(function (c) {
      var li = el("li", "canned-item");
      li.dataset.canned = c.id;
      li.appendChild(el("span", "shortcut", "/" + c.shortcut + " "));
      li.appendChild(el("span", "scope", c.scope === "licence" ? "everyone" : "mine"));
      li.appendChild(el("div", "canned-text", c.text));
      var mayEdit = c.scope === "operator" || (state.session && state.session.operator.isAdmin);
      if (mayEdit) {
        var del = el("button", "secondary small-button delete-canned", "Delete");
        del.type = "button";
        del.setAttribute("aria-label", "Delete /" + c.shortcut);
        del.addEventListener("click", function () {
          http("DELETE", "api/canned/" + c.id, { scope: c.scope }).then(loadCanned).catch(function (e) {
            $("canned-error").textContent = e.message;
          });
        });
        li.appendChild(del);
      }
      list.appendChild(li);
    });
    Object.keys(state.chats).forEach(function (id) { fillCannedPick(state.chats[id].pick); });
  }

  $("canned-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    $("canned-error").textContent = "";
    http("POST", "api/canned", {
      shortcut: $("canned-shortcut").value.trim(), text: $("canned-text").value, scope: $("canned-scope").value
    }).then(function () {
      $("canned-shortcut").value = ""; $("canned-text").value = "";
      return loadCanned();
    }).catch(function (e) { $("canned-error").textContent = e.message; });
  });

  // -- history and search ---------------------------------------------------------------------------

  function showTranscript(title, messages) {
    $("transcript-section").hidden = false;
    $("transcript-title").textContent = title;
    var log = $("transcript");
    log.textContent = "";
    messages.forEach(function (m) {
      var li = el("li", "msg");
      li.appendChild(el("span", "who", (m.originatorMetadata ? m.originatorMetadata.name : "") + " · " + new Date(m.serverTimestamp).toLocaleString()));
      var text = el("span", "text");
      text.appendChild(linkify(m.event.message || ""));
      li.appendChild(text);
      log.appendChild(li);
    });
    if (!messages.length) log.appendChild(el("li", "event", "No messages."));
  }
  $("transcript-close").addEventListener("click", function () { $("transcript-section").hidden = true; });

  function showHistory(visitorId, who) {
    call("history", { visitorId: visitorId }).then(function (r) {
      var results = $("search-results");
      results.textContent = "";
      if (!r.chats.length) results.appendChild(el("li", "muted", "No past chats of " + who + "."));
      r.chats.forEach(function (c) {
        var li = el("li", "result");
        li.appendChild(el("div", null, who + " · " + new Date(c.createdAt).toLocaleString() + " · " + c.messages.length + " messages"));
        var open = el("button", "secondary small-button", "Show");
        open.type = "button";
        open.addEventListener("click", function () { showTranscript("#" + c.chatId, c.messages); });
        li.appendChild(open);
        results.appendChild(li);
      });
    }).catch(report);
  }

  $("search-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = $("search-text").value.trim();
    if (text.length < 2) return;
    call("transcripts.search", { text: text }).then(function (r) {
      var results = $("search-results");
      results.textContent = "";
      if (!r.chats.length) results.appendChild(el("li", "muted", "Nothing found."));
      r.chats.forEach(function (c) {
        var li = el("li", "result");
        li.dataset.chat = c.chatId;
        li.appendChild(el("div", null, "#" + c.chatId + " · " + (c.name || "Visitor") + " · " + new Date(c.createdAt).toLocaleString()));
        var open = el("button", "secondary small-button", "Show");
        open.type = "button";
        open.setAttribute("aria-label", "Show the transcript of chat " + c.chatId);
        open.addEventListener("click", function () {
          call("transcript", { chatId: c.chatId }).then(function (t) {
            showTranscript("#" + c.chatId + " " + (t.name || ""), t.messages);
          }).catch(report);
        });
        li.appendChild(open);
        results.appendChild(li);
      });
    }).catch(report);
  });

  // -- start ----------------------------------------------------------------------------------------

  http("GET", "session").then(function (s) { state.session = s; showApp(); })
    .catch(function () { showLogin(""); });
})();
