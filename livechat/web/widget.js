/* livechat widget: the chat panel, loaded by the loader (livechat.js) when a
 * visitor opens it, an invitation arrives or a chat is open.  It speaks the
 * core's event vocabulary through the loader's connection (docs/events.md).
 * Messages are rendered as text; only http(s) links become clickable. */
(function () {
  "use strict";
  var TEXTS = {
    en: {
      title: "Chat with us", launcher: "Chat", greeting: "Hello! Ask us anything.",
      offline: "Nobody is available right now. You can still start a chat \u2014 we will answer as soon as someone is back \u2014 or leave us a message.",
      closed: "We are closed now. Leave us a message and we will answer by e-mail.",
      queued: "Waiting for an agent\u2026", queue_position: "You are number {n} in the queue.",
      connecting: "Connecting you to an agent\u2026", name: "Name (optional)", email: "E-mail (optional)",
      message: "Your message", start: "Start chat", send: "Send", end: "End chat", ended: "The chat has ended.",
      new_chat: "Start a new chat", leave_message: "Leave a message", left: "Thank you! Your message has been sent.",
      transcript: "E-mail me the transcript", transcript_sent: "The transcript is on its way.",
      typing: "{name} is typing\u2026", read: "Read", invitation: "{name} invites you to chat",
      accept: "Chat now", decline: "No, thanks", close: "Close", error: "Something went wrong. Please try again.",
      joined: "{name} joined the chat.", left_chat: "{name} left the chat.", you: "You", reconnecting: "Reconnecting\u2026",
      email_required: "E-mail", not_sent: "Not sent \u2014 click to retry"
    },
    pl: {
      title: "Porozmawiaj z nami", launcher: "Czat", greeting: "Dzie\u0144 dobry! O co chcesz zapyta\u0107?",
      offline: "Nikt nie jest teraz dost\u0119pny. Mo\u017cesz mimo to rozpocz\u0105\u0107 rozmow\u0119 \u2014 odpowiemy, gdy tylko kto\u015b wr\u00f3ci \u2014 albo zostawi\u0107 wiadomo\u015b\u0107.",
      closed: "Biuro jest teraz zamkni\u0119te. Zostaw wiadomo\u015b\u0107, odpowiemy e-mailem.",
      queued: "Czekasz na konsultanta\u2026", queue_position: "Jeste\u015b {n}. w kolejce.",
      connecting: "\u0141\u0105czymy z konsultantem\u2026", name: "Imi\u0119 (opcjonalnie)", email: "E-mail (opcjonalnie)",
      message: "Twoja wiadomo\u015b\u0107", start: "Rozpocznij czat", send: "Wy\u015blij", end: "Zako\u0144cz czat",
      ended: "Rozmowa zosta\u0142a zako\u0144czona.", new_chat: "Nowa rozmowa", leave_message: "Zostaw wiadomo\u015b\u0107",
      left: "Dzi\u0119kujemy! Wiadomo\u015b\u0107 zosta\u0142a wys\u0142ana.", transcript: "Wy\u015blij mi zapis rozmowy",
      transcript_sent: "Zapis rozmowy jest w drodze.", typing: "{name} pisze\u2026", read: "Przeczytane",
      invitation: "{name} zaprasza do rozmowy", accept: "Porozmawiajmy", decline: "Nie, dzi\u0119kuj\u0119", close: "Zamknij",
      error: "Co\u015b posz\u0142o nie tak. Spr\u00f3buj ponownie.", joined: "{name} do\u0142\u0105czy\u0142(a) do rozmowy.",
      left_chat: "{name} opu\u015bci\u0142(a) rozmow\u0119.", you: "Ty", reconnecting: "\u0141\u0105czenie\u2026",
      email_required: "E-mail", not_sent: "Nie wys\u0142ano \u2014 kliknij, aby ponowi\u0107"
    }
  };
  var LINK = /\bhttps?:\/\/[^\s<>"']+/g;

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
        var a = el("a", "ls-link", url);
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

  window.__livechatWidget = function (api) {
    if (api.show) return;
    var T = {}, base = TEXTS[api.lang] || TEXTS.en, conf = {}, uid = String(Math.random()).slice(2, 8);
    for (var k in base) T[k] = base[k];
    function t(key, name, n) { return (T[key] || "").replace("{name}", name || "").replace("{n}", n); }

    var root = api.root, launcher = api.launcher;
    var panel = el("div", "ls-panel");
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-labelledby", "ls-title-" + uid);
    panel.hidden = true;
    var head = el("div", "ls-header");
    var title = el("h2", "ls-title", T.title);
    title.id = "ls-title-" + uid;
    var closeBtn = el("button", "ls-close", "\u00d7");
    closeBtn.type = "button";
    closeBtn.setAttribute("aria-label", T.close);
    head.appendChild(title);
    head.appendChild(closeBtn);
    var notice = el("p", "ls-notice");
    notice.setAttribute("role", "status");
    var invite = el("div", "ls-invitation");
    var log = el("div", "ls-log");
    log.setAttribute("role", "log");
    log.setAttribute("aria-live", "polite");
    log.tabIndex = 0;
    var typing = el("p", "ls-typing");
    typing.setAttribute("aria-live", "polite");

    function field(form, label, name, type, required) {
      var wrap = el("label", "ls-field"), input = el(type == "textarea" ? "textarea" : "input");
      wrap.appendChild(el("span", "ls-label", label));
      if (type != "textarea") input.type = type;
      input.name = name;
      if (required) input.required = true;
      wrap.appendChild(input);
      form.appendChild(wrap);
      return input;
    }
    function button(parent, cls, text, type) {
      var b = el("button", "ls-button " + cls, text);
      b.type = type || "button";
      parent.appendChild(b);
      return b;
    }

    var pre = el("form", "ls-prechat");
    var preName = field(pre, T.name, "name", "text");
    var preEmail = field(pre, T.email, "email", "email");
    var preMsg = field(pre, T.message, "message", "textarea");
    var preStart = button(pre, "ls-start", T.start, "submit");
    var preLeave = button(pre, "ls-leave-link", T.leave_message);

    var compose = el("form", "ls-compose");
    var input = field(compose, T.message, "message", "textarea");
    input.rows = 2;
    button(compose, "ls-send", T.send, "submit");
    var endBtn = button(compose, "ls-end", T.end);

    var ended = el("div", "ls-ended");
    ended.appendChild(el("p", "ls-ended-text", T.ended));
    var tform = el("form", "ls-transcript");
    var tEmail = field(tform, T.email_required, "email", "email", true);
    button(tform, "ls-transcript-send", T.transcript, "submit");
    ended.appendChild(tform);
    var newBtn = button(ended, "ls-new", T.new_chat);

    var leave = el("form", "ls-leave");
    var lName = field(leave, T.name, "name", "text");
    var lEmail = field(leave, T.email_required, "email", "email", true);
    var lMsg = field(leave, T.message, "message", "textarea", true);
    button(leave, "ls-leave-send", T.send, "submit");

    [head, notice, invite, log, typing, pre, compose, ended, leave].forEach(function (e) { panel.appendChild(e); });
    root.appendChild(panel);

    var chatId = null, view = "", shown = {}, agentTyping = "", composing = false, idle = null;
    var readTimer = null, mine = {}, queueText = "";

    function show() {
      panel.hidden = false;
      launcher.setAttribute("aria-expanded", "true");
      try { sessionStorage.setItem("livechat:" + api.licence + ":open", "1"); } catch (e) {}
      render();
      var first = panel.querySelector("form:not([hidden]) input, form:not([hidden]) textarea");
      (first || closeBtn).focus();
      markRead();
    }
    function hide() {
      panel.hidden = true;
      launcher.setAttribute("aria-expanded", "false");
      try { sessionStorage.removeItem("livechat:" + api.licence + ":open"); } catch (e) {}
      launcher.focus();
    }
    api.show = show;
    launcher.onclick = function () { panel.hidden ? show() : hide(); };
    closeBtn.onclick = hide;
    panel.addEventListener("keydown", function (e) { if (e.key == "Escape") hide(); });

    function setView(v) {
      view = v;
      pre.hidden = v != "prechat";
      compose.hidden = v != "chat";
      ended.hidden = v != "ended";
      leave.hidden = v != "leave";
      log.hidden = !(v == "chat" || v == "ended");
      typing.hidden = v != "chat";
      panel.setAttribute("data-view", v);
    }
    function say(text) { notice.textContent = text || ""; notice.hidden = !text; }

    function render() {
      var r = api.reception || { open: true, online: true };
      chatId = api.current();
      var c = chatId ? api.chat(chatId) : null;
      if (c && (c.events.length || api.chats.indexOf(chatId) >= 0)) {
        showChat(c);
        if (c.closed) { setView("ended"); say(""); } else { setView("chat"); say(queueText); }
      } else if (view == "left") {
        setView("leave"); leave.hidden = true; say(T.left);
      } else if (!r.open) {
        setView("leave"); say(T.closed);
      } else if (view != "leave") {
        setView("prechat");
        preLeave.hidden = r.online;
        say(r.online ? T.greeting : T.offline);
        if (conf.prechat === false) { preName.parentNode.hidden = true; preEmail.parentNode.hidden = true; }
      }
      renderInvitation();
    }

    function renderInvitation() {
      invite.textContent = "";
      var inv = api.invitation;
      invite.hidden = !inv || (view == "chat" && chatId && !api.chat(chatId).closed);
      if (invite.hidden) return;
      invite.appendChild(el("p", "ls-invitation-text", t("invitation", inv.operator && inv.operator.name)));
      if (inv.message) invite.appendChild(el("p", "ls-invitation-message", inv.message));
      var yes = button(invite, "ls-accept", T.accept), no = button(invite, "ls-decline", T.decline);
      yes.onclick = function () { answer(true); };
      no.onclick = function () { answer(false); };
    }
    function answer(accept) {
      var inv = api.invitation;
      api.invitation = null;
      renderInvitation();
      api.call({ type: "invitation.answer", accept: accept, name: preName.value, email: preEmail.value })
        .then(function (r) { if (r.chatId) start(r.chatId); }, function (err) { api.invitation = inv; fail(err); });
    }

    function showChat(c) {
      if (shown.chat != c.id) { log.textContent = ""; shown = { chat: c.id, last: 0 }; mine = {}; }
      c.events.forEach(add);
    }
    function who(m) { return m.originatorMetadata || {}; }
    function add(m) {
      if (m.chatId != null && m.chatId != shown.chat) return;
      if (!m.sequence || m.sequence <= shown.last) return;
      shown.last = m.sequence;
      var e = m.event, o = who(m), own = o.role == "CONSUMER";
      if (e.type == "ContentEvent") {
        dropFailed(e.message);
        var row = el("div", "ls-message " + (own ? "ls-mine" : "ls-theirs"));
        row.setAttribute("data-seq", m.sequence);
        row.appendChild(el("span", "ls-author", own ? T.you : o.name || ""));
        var body = el("p", "ls-text");
        body.appendChild(linkify(e.message || ""));
        row.appendChild(body);
        if (own) { var st = el("span", "ls-receipt"); row.appendChild(st); mine[m.sequence] = st; }
        log.appendChild(row);
      } else if (e.type == "JoinEvent" && e.participant.role != "CONSUMER") {
        queueText = "";
        if (view == "chat") say("");
        log.appendChild(el("p", "ls-event", t("joined", e.participant.name)));
      } else if (e.type == "LeaveEvent" && e.participant.role != "CONSUMER") {
        log.appendChild(el("p", "ls-event", t("left_chat", e.participant.name)));
      } else if (e.type == "AcceptStatusEvent" && !own && e.status == "READ") {
        e.sequenceList.forEach(function (s) { if (mine[s]) { mine[s].textContent = T.read; mine[s].className = "ls-receipt ls-read"; } });
      } else if (e.type == "CloseEvent") {
        log.appendChild(el("p", "ls-event", T.ended));
      }
      log.scrollTop = log.scrollHeight;
    }

    function markRead() {
      clearTimeout(readTimer);
      readTimer = setTimeout(function () {
        if (panel.hidden || document.hidden || !chatId) return;
        var c = api.chat(chatId), seqs = [];
        if (c.closed) return;
        c.events.forEach(function (m) {
          if (m.sequence > (c.read || 0) && m.event.type == "ContentEvent" && who(m).role != "CONSUMER") seqs.push(m.sequence);
        });
        if (!seqs.length) return;
        api.call({ type: "chat.read", chatId: chatId, sequences: seqs.slice(-200) }).then(function () {
          var d = api.chat(chatId);
          d.read = Math.max(d.read || 0, seqs[seqs.length - 1]);
          api.keep(d);
        }, function () {});
      }, 300);
    }
    document.addEventListener("visibilitychange", markRead);

    function fail(err) { say((err && err.message) || T.error); }

    function start(id) {
      api.setCurrent(id);
      if (api.chats.indexOf(id) < 0) api.chats.push(id);
      if (!queueText) queueText = T.connecting;
      render();
      input.focus();
    }
    pre.onsubmit = function (e) {
      e.preventDefault();
      preStart.disabled = true;
      if (preEmail.value) tEmail.value = preEmail.value;
      api.call({ type: "chat.request", name: preName.value, email: preEmail.value, message: preMsg.value,
        group: api.group ? +api.group : null })
        .then(function (r) { preMsg.value = ""; start(r.chatId); }, fail)
        .then(function () { preStart.disabled = false; });
    };
    preLeave.onclick = function () { setView("leave"); say(T.leave_message); lMsg.value = preMsg.value; lName.value = preName.value; lEmail.value = preEmail.value; lEmail.focus(); };
    leave.onsubmit = function (e) {
      e.preventDefault();
      api.call({ type: "message.leave", name: lName.value, email: lEmail.value, message: lMsg.value,
        url: location.href, language: api.lang, group: api.group ? +api.group : null })
        .then(function () { lMsg.value = ""; view = "left"; render(); }, fail);
    };

    function failed(text) {
      var row = el("div", "ls-message ls-mine ls-failed");
      row.appendChild(el("span", "ls-author", T.you));
      row.appendChild(el("p", "ls-text", text));
      var retry = button(row, "ls-retry", T.not_sent);
      retry.onclick = function () { row.parentNode && row.parentNode.removeChild(row); send(text); };
      row.setAttribute("data-text", text);
      log.appendChild(row);
    }
    function dropFailed(text) {
      var rows = log.querySelectorAll(".ls-failed");
      for (var i = 0; i < rows.length; i++) if (rows[i].getAttribute("data-text") == text) { rows[i].parentNode.removeChild(rows[i]); return; }
    }
    function send(text) {
      api.call({ type: "chat.send", chatId: chatId, text: text }).then(null, function (err) {
        if (err && err.code == "disconnected") failed(text); else fail(err);
      });
    }
    compose.onsubmit = function (e) {
      e.preventDefault();
      var text = input.value;
      if (!text.trim() || !chatId) return;
      input.value = "";
      stopTyping();
      send(text);
    };
    input.addEventListener("keydown", function (e) {
      if (e.key == "Enter" && !e.shiftKey) { e.preventDefault(); compose.requestSubmit ? compose.requestSubmit() : compose.onsubmit(e); }
    });
    input.addEventListener("input", function () {
      if (!chatId) return;
      if (!composing && input.value) { composing = true; api.call({ type: "chat.state", chatId: chatId, state: "COMPOSING" }).then(null, function () {}); }
      clearTimeout(idle);
      idle = setTimeout(stopTyping, 2000);
    });
    function stopTyping() {
      clearTimeout(idle);
      if (!composing) return;
      composing = false;
      api.call({ type: "chat.state", chatId: chatId, state: "PAUSE" }).then(null, function () {});
    }
    endBtn.onclick = function () {
      if (chatId) api.call({ type: "chat.leave", chatId: chatId }).then(null, fail);
    };
    tform.onsubmit = function (e) {
      e.preventDefault();
      api.call({ type: "transcript.mail", chatId: chatId, email: tEmail.value, language: api.lang })
        .then(function () { say(T.transcript_sent); }, fail);
    };
    newBtn.onclick = function () {
      if (chatId) api.forget(chatId);
      chatId = null; shown = {}; log.textContent = ""; view = ""; queueText = "";
      render();
    };

    api.on(function (m) {
      if (m.type == "chat.event" && m.sequence) {
        if (m.chatId == api.current()) {
          if (shown.chat != m.chatId) render(); else add(m);
          if (m.event.type == "CloseEvent") { agentTyping = ""; typing.textContent = ""; render(); }
          if (m.event.type == "ContentEvent" && who(m).role != "CONSUMER") { typing.textContent = ""; markRead(); }
        }
      } else if (m.type == "chat.event" && m.event.type == "ChatStateEvent" && m.chatId == chatId) {
        if (who(m).role == "CONSUMER") return;
        typing.textContent = m.event.chatState == "COMPOSING" ? t("typing", who(m).name) : "";
      } else if (m.type == "chat.queue" && m.chatId == chatId) {
        queueText = m.position > 0 ? t("queue_position", "", m.position) : T.connecting;
        if (view == "chat") say(queueText);
      } else if (m.type == "chat.opened" || m.type == "invitation" || m.type == "reception" || m.type == "welcome") {
        render();
        if (m.type == "invitation" && panel.hidden) show();
      } else if (m.type == "connection") {
        if (view == "chat") say(T.reconnecting);
      }
    });

    fetch(api.base + "livesupport/config?licence=" + api.licence + "&lang=" + api.lang, { credentials: "include" })
      .then(function (r) { return r.json(); })
      .then(function (c) {
        conf = c;
        for (var key in c.texts || {}) T[key] = c.texts[key];
        panel.style.setProperty("--ls-color", c.color);
        panel.style.setProperty("--ls-text", c.textColor);
        root.setAttribute("data-position", c.position);
        if (c.css) { var s = el("style"); s.textContent = c.css; document.head.appendChild(s); }
        title.textContent = T.title;
        launcher.textContent = T.launcher;
        render();
      }, function () {});

    setView("");
    render();
    var open = false;
    try { open = sessionStorage.getItem("livechat:" + api.licence + ":open") == "1"; } catch (e) {}
    if (open || api.invitation) show();
  };
})();
