/* The widget's preview in the control panel: the real widget (widget.js and
 * widget.css of the visitors' side), drawn with the look the panel posts
 * (not yet saved), on a stand-in of the loader's API that talks to nobody. */
(function () {
  "use strict";
  var D = document, look = null, lang = "en", view = "chat", root = null, ownStyles = [];
  var SAMPLE = {
    en: ["Hello, I have a question about my order.", "Anna", "Hi! Of course \u2014 what is the order number?"],
    pl: ["Dzie\u0144 dobry, mam pytanie o zam\u00f3wienie.", "Anna", "Dzie\u0144 dobry! Jaki jest numer zam\u00f3wienia?"]
  };
  /* The preview must never take the focus from the panel's form. */
  HTMLElement.prototype.focus = function () {};

  var realFetch = window.fetch;
  window.fetch = function (url) {
    if (String(url).indexOf("livesupport/config") >= 0) {
      var c = {
        color: look.color, textColor: look.textColor, position: look.position, prechat: look.prechat,
        texts: (look.texts || {})[lang] || {}, css: look.css || "", language: lang, maxMessageLength: 2000
      };
      return Promise.resolve({ json: function () { return Promise.resolve(c); } });
    }
    return realFetch ? realFetch.apply(window, arguments) : Promise.reject(new Error("offline"));
  };

  function events() {
    var s = SAMPLE[lang] || SAMPLE.en;
    var m = function (seq, role, name, event) {
      return { type: "chat.event", chatId: 1, sequence: seq, event: event, originatorMetadata: { role: role, name: name } };
    };
    return [
      m(1, "CONSUMER", "", { type: "ContentEvent", message: s[0] }),
      m(2, "ASSIGNED_AGENT", s[1], { type: "JoinEvent", participant: { role: "ASSIGNED_AGENT", name: s[1] } }),
      m(3, "ASSIGNED_AGENT", s[1], { type: "ContentEvent", message: s[2] }),
      m(4, "ASSIGNED_AGENT", s[1], { type: "AcceptStatusEvent", status: "READ", sequenceList: [1] })
    ];
  }

  function build() {
    if (root) root.parentNode.removeChild(root);
    [].slice.call(D.head.querySelectorAll("style")).forEach(function (st) {
      if (ownStyles.indexOf(st) < 0) st.parentNode.removeChild(st);
    });
    var chat = view == "chat";
    var api = {
      licence: 0, group: null, lang: lang, base: "/preview/", version: "", token: "", visitorId: "preview",
      reception: { open: true, online: true }, chats: chat ? [1] : [], invitation: null, look: look, seen: {},
      on: function () {},
      call: function () { return new Promise(function () {}); },
      chat: function (id) { return { id: id, last: 4, events: chat ? events() : [], read: 4 }; },
      keep: function () {}, forget: function () {}, setCurrent: function () {},
      current: function () { return chat ? 1 : null; },
      open: function () {}, pageView: function () { return Promise.resolve({}); }
    };
    root = D.createElement("div");
    root.className = "ls-LiveSupportRoot ls-LiveSupport" + String(Math.random()).slice(2, 12);
    root.setAttribute("data-position", look.position || "right");
    var b = D.createElement("button");
    b.className = "ls-launcher";
    b.type = "button";
    b.textContent = lang == "pl" ? "Czat" : "Chat";
    b.style.cssText = "position:fixed;bottom:20px;" + (look.position == "left" ? "left" : "right") + ":20px;" +
      "border:0;border-radius:24px;padding:12px 20px;font:600 15px/1 sans-serif;background:" + look.color +
      ";color:" + look.textColor;
    root.appendChild(b);
    D.body.appendChild(root);
    api.root = root;
    api.launcher = b;
    window.__livechatWidget(api);
    api.show();
    root.setAttribute("data-preview", "ready");
  }

  window.addEventListener("message", function (e) {
    if (e.origin != location.origin || !e.data || e.data.type != "livechat-preview") return;
    look = e.data.look;
    lang = e.data.lang == "pl" ? "pl" : "en";
    view = e.data.view == "prechat" ? "prechat" : "chat";
    build();
  });
  ownStyles = [].slice.call(D.head.querySelectorAll("style"));
  if (window.parent !== window) window.parent.postMessage({ type: "livechat-preview-ready" }, location.origin);
})();
