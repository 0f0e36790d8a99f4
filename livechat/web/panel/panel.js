/* livechat control panel.  Plain JS, no build step.  Every action is a call
 * of the REST API (/api/v1, docs/api.md) with the panel's session cookie and
 * its CSRF token; everything shown is text (textContent), never HTML. */
(function () {
  "use strict";
  var D = document, session = null, cache = {}, previewLook = null;
  var SECTIONS = ["operators", "groups", "office", "widget", "website", "webhooks", "keys",
    "transcripts", "events", "reports"];
  var DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
  var DAY_NAMES = { mon: "Mon", tue: "Tue", wed: "Wed", thu: "Thu", fri: "Fri", sat: "Sat", sun: "Sun" };

  // -- DOM helpers ------------------------------------------------------------------
  function $(id) { return D.getElementById(id); }
  /* h("tag.class", {attr: value, onclick: f}, child, "text", [children]) */
  function h(spec, attrs) {
    var parts = spec.split("."), e = D.createElement(parts[0]);
    if (parts.length > 1) e.className = parts.slice(1).join(" ");
    var start = 1;
    if (attrs && typeof attrs == "object" && !(attrs instanceof Node) && !Array.isArray(attrs)) {
      start = 2;
      for (var k in attrs) {
        var v = attrs[k];
        if (v == null || v === false) continue;
        if (k.slice(0, 2) == "on") e.addEventListener(k.slice(2), v);
        else if (k == "text") e.textContent = v;
        else if (k in e && k != "list" && k != "form") e[k] = v;
        else e.setAttribute(k, v === true ? "" : v);
      }
    }
    for (var i = start; i < arguments.length; i++) add(e, arguments[i]);
    return e;
  }
  function add(parent, child) {
    if (child == null || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { add(parent, c); }); return; }
    parent.appendChild(child instanceof Node ? child : D.createTextNode(String(child)));
  }
  var uid = 0;
  /* A labelled control: field("Nick", h("input", {...})) */
  function field(label, control, hint) {
    if (!control.id) control.id = "f" + ++uid;
    var wrap = h("div", h("label", { htmlFor: control.id, text: label }), control);
    if (hint) {
      var hintEl = h("p.muted", { id: control.id + "-hint", text: hint });
      control.setAttribute("aria-describedby", hintEl.id);
      wrap.appendChild(hintEl);
    }
    return wrap;
  }
  function check(label, input) { return h("label.inline", input, label); }
  function when(ms) { return ms ? new Date(ms).toLocaleString() : ""; }
  function seconds(ms) {
    if (ms == null) return "\u2013";
    var s = Math.round(ms / 1000);
    return s < 60 ? s + " s" : Math.floor(s / 60) + " min " + (s % 60) + " s";
  }
  function say(text, bad) {
    var s = $("status");
    s.textContent = text || "";
    s.className = "status" + (bad ? " bad" : "");
    clearTimeout(say.timer);
    if (text) say.timer = setTimeout(function () { s.textContent = ""; }, bad ? 9000 : 4000);
  }
  function failed(err) { say(err && err.message ? err.message : String(err), true); }
  function copy(text, button) {
    var done = function () { say("Copied to the clipboard."); if (button) button.focus(); };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(done, function () { say("Select the text and copy it (Ctrl+C).", true); });
    } else {
      say("Select the text and copy it (Ctrl+C).", true);
    }
  }
  function secretBox(title, secret, note) {
    var code = h("code", { text: secret, id: "secret-value" });
    var b = h("button", { type: "button", text: "Copy" });
    b.onclick = function () { copy(secret, b); };
    return h("div.secret", { role: "alert" }, h("strong", title), " ", code, " ", b, h("p", note));
  }

  // -- the API ---------------------------------------------------------------------
  function api(method, path, body) {
    var headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method != "GET" && session) headers["X-CSRF-Token"] = session.csrfToken;
    return fetch(path.charAt(0) == "/" && path.indexOf("/api/") != 0 && path.indexOf("/auth/") != 0 ? "/api/v1" + path : path, {
      method: method, headers: headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (r) {
      if (r.status == 204) return null;
      return r.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = { message: text }; }
        if (r.status == 401 && session) { ended("Your session has ended. Please log in again."); }
        if (!r.ok) {
          var err = new Error((data && data.message) || ("HTTP " + r.status));
          err.status = r.status; err.code = data && data.error;
          throw err;
        }
        return data;
      });
    });
  }
  function all(paths) { return Promise.all(paths.map(function (p) { return api("GET", p); })); }

  // -- session ---------------------------------------------------------------------
  function showLogin(message) {
    session = null;
    $("app").hidden = true;
    $("print").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("login-licence").focus();
  }
  function ended(message) { showLogin(message); }
  function started(s) {
    session = s;
    cache = {};
    $("login").hidden = true;
    $("app").hidden = false;
    $("who").textContent = s.operator.name + " (" + s.operator.nick + ") \u2014 licence " + s.licence +
      (s.licenceName ? " \u00b7 " + s.licenceName : "");
    route();
  }
  $("login-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var f = e.target, licence = f.licence.value.trim();
    if (!/^\d{1,10}$/.test(licence) || !f.nick.value || !f.password.value) {
      $("login-error").textContent = "Enter the licence number, your nick and your password.";
      return;
    }
    $("login-error").textContent = "";
    api("POST", "/auth/login", { licence: +licence, nick: f.nick.value, password: f.password.value })
      .then(function (s) { f.password.value = ""; started(s); }, function (err) {
        $("login-error").textContent = err.message;
        f.password.focus();
      });
  });
  $("logout").onclick = function () {
    api("POST", "/auth/logout", {}).then(function () { showLogin("You have logged out."); }, failed);
  };
  $("logout-all").onclick = function () {
    if (!confirm("End your sessions in every browser (panel and web agent)?")) return;
    api("POST", "/auth/logout-everywhere", {}).then(function (r) {
      showLogin("Logged out everywhere (" + r.ended + " session" + (r.ended == 1 ? "" : "s") + ").");
    }, failed);
  };

  // -- routing ---------------------------------------------------------------------
  function route() {
    if (!session) return Promise.resolve();
    var hash = location.hash.replace(/^#/, ""), parts = hash.split("/"), name = parts[0];
    if (name == "print") return printView(parts[1]);
    $("print").hidden = true;
    $("app").hidden = false;
    if (SECTIONS.indexOf(name) < 0 && name != "transcript") name = "operators";
    var links = D.querySelectorAll("#nav a");
    for (var i = 0; i < links.length; i++) {
      var here = links[i].getAttribute("href") == "#" + (name == "transcript" ? "transcripts" : name);
      if (here) links[i].setAttribute("aria-current", "page"); else links[i].removeAttribute("aria-current");
    }
    var main = $("main");
    main.textContent = "";
    main.setAttribute("data-section", name);
    var render = RENDER[name];
    main.focus();
    return Promise.resolve(render(main, parts.slice(1))).then(function () {
      var title = main.querySelector("h1");
      D.title = (title ? title.textContent + " \u2014 " : "") + "livechat control panel";
    }, failed);
  }
  window.addEventListener("hashchange", route);

  function operators() { return api("GET", "/operators?limit=500").then(function (p) { return p.items; }); }
  function groups() { return api("GET", "/groups").then(function (p) { return p.items; }); }

  var RENDER = {};

  // -- operators -------------------------------------------------------------------
  RENDER.operators = function (main) {
    return all(["/licence", "/operators?limit=500"]).then(function (r) {
      var licence = r[0], ops = r[1].items;
      var seats = function (n, max) { return n + " of " + (max == null ? "unlimited" : max); };
      var maxInput = h("input", { type: "number", min: 0, max: 1000, value: licence.maxChats == null ? "" : licence.maxChats, placeholder: "server default" });
      var defaults = h("form.row", { onsubmit: function (e) {
        e.preventDefault();
        var v = maxInput.value.trim();
        api("PATCH", "/licence", { maxChats: v === "" ? null : +v }).then(function () { say("Default saved."); }, failed);
      } }, field("Default parallel chats per operator", maxInput, "Empty: the server's MAX_CHATS_PER_AGENT."),
        h("div", h("button.primary", { type: "submit", text: "Save default" })));
      var table = h("table", h("caption.visually-hidden", "Operators"),
        h("thead", h("tr", ["Nick", "Name", "E-mail", "Seat", "Max chats", "Role", "State", "Actions"].map(function (t) { return h("th", { scope: "col", text: t }); }))),
        h("tbody", ops.map(operatorRow)));
      add(main, [
        h("h1", "Operators"),
        h("p.muted", "Contact-centre seats: " + seats(licence.operators.cc, licence.seatsCC) +
          " \u00b7 communicator seats: " + seats(licence.operators.com, licence.seatsCOM) + "."),
        defaults, h("div", { id: "op-result" }), table, newOperatorForm()
      ]);
    });
  };
  function operatorRow(op) {
    var tr = h("tr", { className: op.disabled ? "disabled" : "", "data-nick": op.nick });
    var edit = h("button", { type: "button", text: "Edit", "aria-label": "Edit " + op.nick });
    var toggle = h("button", { type: "button", text: op.disabled ? "Enable" : "Disable", "aria-label": (op.disabled ? "Enable " : "Disable ") + op.nick });
    var reset = h("button", { type: "button", text: "Reset password", "aria-label": "Reset the password of " + op.nick });
    add(tr, [h("td", op.nick), h("td", [op.firstName, op.lastName].join(" ").trim()), h("td", op.email),
      h("td", op.accountType == "communicator" ? "communicator" : "contact centre"),
      h("td", op.maxChats == null ? "default" : String(op.maxChats)), h("td", op.admin ? "administrator" : "operator"),
      h("td", h("span.pill." + (op.disabled ? "off" : "on"), op.disabled ? "disabled" : "enabled")),
      h("td.actions", edit, " ", toggle, " ", reset)]);
    toggle.onclick = function () {
      api("PATCH", "/operators/" + op.id, { disabled: !op.disabled }).then(function (o) {
        say(o.nick + (o.disabled ? " is disabled." : " is enabled."));
        route();
      }, failed);
    };
    reset.onclick = function () {
      if (!confirm("Give " + op.nick + " a new password? Their open sessions end.")) return;
      api("POST", "/operators/" + op.id + "/password", {}).then(function (r) {
        var box = $("op-result");
        box.textContent = "";
        box.appendChild(secretBox("New password of " + op.nick + ":", r.password, "Shown this once: give it to " + op.nick + " now."));
      }, failed);
    };
    edit.onclick = function () {
      var first = h("input", { value: op.firstName }), last = h("input", { value: op.lastName });
      var phone = h("input", { value: op.phone });
      var type = h("select", h("option", { value: "contact_center", text: "contact centre" }), h("option", { value: "communicator", text: "communicator" }));
      type.value = op.accountType;
      var max = h("input", { type: "number", min: 0, max: 1000, value: op.maxChats == null ? "" : op.maxChats, placeholder: "licence default" });
      var admin = h("input", { type: "checkbox", checked: op.admin });
      var form = h("form.row", { onsubmit: function (e) {
        e.preventDefault();
        api("PATCH", "/operators/" + op.id, { firstName: first.value, lastName: last.value, phone: phone.value,
          accountType: type.value, maxChats: max.value === "" ? null : +max.value, admin: admin.checked })
          .then(function () { say(op.nick + " saved."); route(); }, failed);
      } }, field("First name", first), field("Last name", last), field("Phone", phone), field("Seat", type),
        field("Max parallel chats", max), h("div", check("Administrator", admin)),
        h("div", h("button.primary", { type: "submit", text: "Save" }), " ", h("button", { type: "button", text: "Cancel", onclick: route })));
      var row = h("tr", h("td", { colSpan: 8 }, h("h2", "Edit " + op.nick), form));
      tr.parentNode.insertBefore(row, tr.nextSibling);
      first.focus();
    };
    return tr;
  }
  function newOperatorForm() {
    var nick = h("input", { name: "nick", required: true, maxLength: 64, autocomplete: "off" });
    var email = h("input", { name: "email", type: "email", required: true });
    var first = h("input", { name: "firstName" }), last = h("input", { name: "lastName" });
    var type = h("select", { name: "accountType" }, h("option", { value: "contact_center", text: "contact centre" }), h("option", { value: "communicator", text: "communicator" }));
    var max = h("input", { name: "maxChats", type: "number", min: 0, max: 1000, placeholder: "licence default" });
    var admin = h("input", { name: "admin", type: "checkbox" });
    var password = h("input", { name: "password", type: "password", minLength: 8, autocomplete: "new-password", placeholder: "generated if empty" });
    var form = h("form.card", { id: "new-operator", onsubmit: function (e) {
      e.preventDefault();
      var body = { nick: nick.value.trim(), email: email.value.trim(), firstName: first.value, lastName: last.value,
        accountType: type.value, admin: admin.checked };
      if (max.value !== "") body.maxChats = +max.value;
      if (password.value) body.password = password.value;
      api("POST", "/operators", body).then(function (r) {
        say(r.operator.nick + " created.");
        return route().then(function () {
          var box = $("op-result");
          if (r.password && box) box.appendChild(secretBox("Password of " + r.operator.nick + ":", r.password, "Shown this once: give it to " + r.operator.nick + " now."));
        });
      }).catch(failed);
    } }, h("h2", "New operator"),
      h("div.row", field("Nick", nick), field("E-mail (LIVECHAT ID)", email), field("First name", first), field("Last name", last)),
      h("div.row", field("Seat", type), field("Max parallel chats", max), field("Password", password), h("div", check("Administrator", admin))),
      h("p", h("button.primary", { type: "submit", text: "Create operator" })));
    return form;
  }

  // -- groups ----------------------------------------------------------------------
  RENDER.groups = function (main) {
    return Promise.all([groups(), operators()]).then(function (r) {
      var list = r[0], ops = r[1];
      add(main, h("h1", "Groups"));
      if (!list.length) add(main, h("p.muted", "No groups yet. Chats can be sent to a group with data-dispatch-to."));
      list.forEach(function (g) {
        var boxes = ops.map(function (o) {
          return check(o.nick, h("input", { type: "checkbox", value: o.id, checked: g.operators.indexOf(o.id) >= 0 }));
        });
        var gname = h("input", { name: "name", required: true, maxLength: 100, value: g.name });
        var gdesc = h("input", { name: "description", maxLength: 500, value: g.description });
        var form = h("form.card", { "data-group": g.id, onsubmit: function (e) {
          e.preventDefault();
          var ids = [].slice.call(form.querySelectorAll("input:checked")).map(function (i) { return +i.value; });
          api("PATCH", "/groups/" + g.id, { name: gname.value.trim(), description: gdesc.value }).then(function () {
            return api("PUT", "/groups/" + g.id + "/operators", { operators: ids });
          }).then(function () { say("Group " + gname.value.trim() + " saved."); route(); }, failed);
        } }, h("h2", g.name + " (group " + g.id + ")"),
          h("div.row", field("Name", gname), field("Description", gdesc)),
          h("fieldset", h("legend", "Members"), boxes),
          h("div.toolbar", h("button.primary", { type: "submit", text: "Save group" }), h("a", { href: "#office/" + g.id, text: "Office hours of " + g.name }),
            h("button.danger", { type: "button", name: "delete", text: "Delete group", onclick: function () {
              if (confirm("Delete the group " + g.name + "? Its members and office hours go; pages that send chats to group " + g.id + " get an error.")) {
                api("DELETE", "/groups/" + g.id).then(function () { say("Group " + g.name + " deleted."); route(); }, failed);
              }
            } })));
        add(main, [form, h("br")]);
      });
      var name = h("input", { required: true, maxLength: 100 }), desc = h("input", { maxLength: 500 });
      add(main, h("form.card", { onsubmit: function (e) {
        e.preventDefault();
        api("POST", "/groups", { name: name.value.trim(), description: desc.value }).then(function () { say("Group created."); route(); }, failed);
      } }, h("h2", "New group"), h("div.row", field("Name", name), field("Description", desc),
        h("div", h("button.primary", { type: "submit", text: "Create group" })))));
    });
  };

  // -- office hours ----------------------------------------------------------------
  RENDER.office = function (main, args) {
    var group = args[0] ? +args[0] : null;
    return Promise.all([groups(), api("GET", group ? "/groups/" + group + "/office" : "/office")]).then(function (r) {
      var list = r[0], office = r[1];
      var scope = h("select", h("option", { value: "", text: "The whole licence" }),
        list.map(function (g) { return h("option", { value: g.id, text: "Group: " + g.name }); }));
      scope.value = group ? String(group) : "";
      scope.onchange = function () { location.hash = scope.value ? "#office/" + scope.value : "#office"; };
      var st = office.status;
      var status = h("p", { id: "office-status" }, h("strong", st.open ? "Open now" : "Closed now"),
        st.reason ? " (" + (st.reason == "switch" ? "switched off by hand" : "outside office hours") + ")" : "",
        st.nextChange ? ", changes at " + when(st.nextChange) : "");
      var switches = (group ? [["", "as the licence"]] : []).concat([["auto", "follow the office hours"], ["open", "open"], ["closed", "closed"]]);
      var current = office.switch == null ? "" : office.switch;
      var radios = switches.map(function (s) {
        return check(s[1], h("input", { type: "radio", name: "switch", value: s[0], checked: s[0] === current }));
      });
      var hours = office.hours;
      var useHours = h("input", { type: "checkbox", id: "use-hours", checked: !!hours });
      var tz = h("input", { value: hours ? hours.timezone : (Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"), list: "zones" });
      tz.setAttribute("list", "zones");
      var zones = h("datalist", { id: "zones" }, (Intl.supportedValuesOf ? Intl.supportedValuesOf("timeZone") : []).map(function (z) { return h("option", { value: z }); }));
      var dayInputs = {};
      var days = h("div.days", DAYS.map(function (d) {
        var input = h("input", { id: "day-" + d, value: hours && hours.week[d] ? hours.week[d].join(", ") : "", placeholder: "closed \u2014 e.g. 09:00-17:00, 18:00-20:00" });
        dayInputs[d] = input;
        return h("div", h("label", { htmlFor: input.id, text: DAY_NAMES[d] }), input);
      }));
      var closed = h("textarea", { rows: 3, placeholder: "2026-12-25" });
      closed.value = hours && hours.closed ? hours.closed.join("\n") : "";
      var hoursBox = h("fieldset", h("legend", "Weekly hours"), field("Time zone", tz), zones, days, field("Closed dates (one a line, YYYY-MM-DD)", closed));
      var sync = function () { hoursBox.disabled = !useHours.checked; };
      useHours.onchange = sync;
      sync();
      var form = h("form", { id: "office-form", onsubmit: function (e) {
        e.preventDefault();
        var chosen = form.querySelector("input[name=switch]:checked");
        var body = { switch: chosen ? (chosen.value || null) : null };
        if (useHours.checked) {
          var week = {};
          DAYS.forEach(function (d) {
            var ranges = dayInputs[d].value.split(",").map(function (x) { return x.trim(); }).filter(Boolean);
            if (ranges.length) week[d] = ranges;
          });
          var dates = closed.value.split(/\s+/).filter(Boolean);
          body.hours = { timezone: tz.value.trim() || "UTC", week: week };
          if (dates.length) body.hours.closed = dates;
        } else {
          body.hours = null;
        }
        api("PATCH", group ? "/groups/" + group + "/office" : "/office", body).then(function () { say("Office hours saved."); route(); }, failed);
      } }, h("fieldset", h("legend", "Manual switch"), radios),
        check(group ? "This group has its own office hours" : "Office hours apply (else: always open)", useHours),
        hoursBox, h("button.primary", { type: "submit", text: "Save office hours" }));
      add(main, [h("h1", "Office hours"), field("Whose hours", scope), status, form]);
    });
  };

  // -- widget look -----------------------------------------------------------------
  RENDER.widget = function (main) {
    return api("GET", "/widget").then(function (look) {
      var color = h("input", { type: "color", id: "widget-color", value: look.color });
      var textColor = h("input", { type: "color", id: "widget-text-color", value: look.textColor });
      var position = h("select", { id: "widget-position" }, h("option", { value: "right", text: "bottom right" }), h("option", { value: "left", text: "bottom left" }));
      position.value = look.position;
      var prechat = h("input", { type: "checkbox", checked: look.prechat });
      var lang = h("select", { id: "widget-lang" }, h("option", { value: "en", text: "English" }), h("option", { value: "pl", text: "Polish" }));
      var view = h("select", { id: "preview-view" }, h("option", { value: "chat", text: "a conversation" }), h("option", { value: "prechat", text: "the start form" }));
      var css = h("textarea", { id: "widget-css", rows: 6, spellcheck: false, maxLength: 32768,
        placeholder: "div.ls-LiveSupportRoot[class*=ls-LiveSupport] .ls-title { font-size: 18px; }" });
      css.value = look.css;
      var texts = { en: Object.assign({}, look.texts.en), pl: Object.assign({}, look.texts.pl) };
      var textBox = h("div.texts");
      function drawTexts() {
        textBox.textContent = "";
        (look.textKeys || []).forEach(function (k) {
          var input = h("input", { id: "text-" + k, value: texts[lang.value][k] || "", placeholder: "(the widget's own)" });
          input.oninput = function () {
            if (input.value) texts[lang.value][k] = input.value; else delete texts[lang.value][k];
            changed();
          };
          add(textBox, h("div", h("label", { htmlFor: input.id, text: k.replace(/_/g, " ") }), input));
        });
      }
      var frame = h("iframe", { id: "preview", title: "Preview of the widget with the changes not yet saved", src: "/preview/" });
      var timer = null;
      function current() {
        return { color: color.value, textColor: textColor.value, position: position.value, prechat: prechat.checked,
          texts: texts, css: css.value };
      }
      function changed() { clearTimeout(timer); timer = setTimeout(post, 120); }
      function post() {
        previewLook = { type: "livechat-preview", look: current(), lang: lang.value, view: view.value };
        if (frame.contentWindow) frame.contentWindow.postMessage(previewLook, location.origin);
      }
      frame.addEventListener("load", post);
      [color, textColor, position, prechat, css, view].forEach(function (c) { c.addEventListener("input", changed); c.addEventListener("change", changed); });
      lang.onchange = function () { drawTexts(); changed(); };
      drawTexts();
      var form = h("form", { id: "widget-form", onsubmit: function (e) {
        e.preventDefault();
        api("PATCH", "/widget", current()).then(function () { say("The look is saved; sites show it within a few seconds."); }, failed);
      } },
        h("div.row", field("Main colour", color), field("Text on it", textColor), field("Corner", position), h("div", check("Ask for name and e-mail first", prechat))),
        h("fieldset", h("legend", "Texts"), field("Language", lang), textBox),
        field("Custom CSS", css, "Prefix rules with div.ls-LiveSupportRoot[class*=ls-LiveSupport] so they win over the site's."),
        h("p", h("button.primary", { type: "submit", text: "Save the look" }), " ",
          h("button", { type: "button", text: "Discard changes", onclick: route })));
      add(main, [h("h1", "Widget look"), h("div.grid2", form,
        h("div.preview", h("h2", "Live preview"), field("Show", view), frame,
          h("p.muted", "The preview shows the unsaved look; visitors see it once it is saved.")))]);
    });
  };
  window.addEventListener("message", function (e) {
    if (e.origin != location.origin || !e.data || e.data.type != "livechat-preview-ready") return;
    var frame = $("preview");
    if (frame && previewLook) frame.contentWindow.postMessage(previewLook, location.origin);
  });

  // -- website: origins and the snippet --------------------------------------------
  RENDER.website = function (main) {
    return Promise.all([api("GET", "/origins"), groups(), api("GET", "/embed")]).then(function (r) {
      var origins = h("textarea", { id: "origins", rows: 6, spellcheck: false });
      origins.value = r[0].origins.join("\n");
      var form = h("form", { onsubmit: function (e) {
        e.preventDefault();
        var list = origins.value.split(/\s+/).filter(Boolean);
        api("PUT", "/origins", { origins: list }).then(function (x) { origins.value = x.origins.join("\n"); say("Allowed sites saved."); }, failed);
      } }, field("Sites that may show the chat (one origin a line)", origins,
        "https://www.example.com, https://*.example.com (every subdomain), or self (this server's test page)."),
        h("button.primary", { type: "submit", text: "Save allowed sites" }));
      var group = h("select", h("option", { value: "", text: "any operator" }), r[1].map(function (g) { return h("option", { value: g.id, text: g.name }); }));
      var lang = h("select", h("option", { value: "", text: "the page's" }), h("option", { value: "en", text: "English" }), h("option", { value: "pl", text: "Polish" }));
      var snippet = h("textarea.snippet", { id: "snippet", readOnly: true, rows: 3 });
      var test = h("a", { target: "_blank", rel: "noopener", text: "Open the test page" });
      function show(embed) { snippet.value = embed.snippet; test.href = embed.testPage; }
      show(r[2]);
      var refresh = function () {
        var q = [];
        if (group.value) q.push("group=" + group.value);
        if (lang.value) q.push("lang=" + lang.value);
        api("GET", "/embed" + (q.length ? "?" + q.join("&") : "")).then(show, failed);
      };
      group.onchange = refresh;
      lang.onchange = refresh;
      var copyButton = h("button.primary", { type: "button", text: "Copy the snippet" });
      copyButton.onclick = function () { snippet.select(); copy(snippet.value, copyButton); };
      add(main, [h("h1", "Website and embed code"), h("h2", "Allowed sites"), form,
        h("h2", "The code to paste"), h("p", "Paste it into every page of the site, before </body>."),
        h("div.row", field("Chats go to", group), field("Language", lang)), field("Snippet", snippet),
        h("div.toolbar", copyButton, test)]);
    });
  };

  // -- webhooks --------------------------------------------------------------------
  RENDER.webhooks = function (main) {
    return Promise.all([api("GET", "/webhooks"), api("GET", "/openapi.json")]).then(function (r) {
      var hooks = r[0].items, doc = r[1];
      var events = doc.paths["/webhooks"].post.requestBody.content["application/json"].schema.properties.event.enum;
      var rows = hooks.map(function (hook) {
        var toggle = h("button", { type: "button", text: hook.enabled ? "Pause" : "Resume" });
        toggle.onclick = function () { api("PATCH", "/webhooks/" + hook.id, { enabled: !hook.enabled }).then(route, failed); };
        var del = h("button.danger", { type: "button", text: "Remove", "aria-label": "Remove the webhook " + hook.event + " " + hook.url });
        del.onclick = function () {
          if (confirm("Remove this webhook? Its undelivered events go with it.")) api("DELETE", "/webhooks/" + hook.id).then(route, failed);
        };
        return h("tr", h("td", hook.event == "*" ? "every event" : "EVENT_" + hook.event), h("td", hook.url), h("td", hook.method),
          h("td", h("span.pill." + (hook.enabled ? "on" : "off"), hook.enabled ? "on" : "paused")), h("td.actions", toggle, " ", del));
      });
      var event = h("select", events.map(function (e) { return h("option", { value: e, text: e == "*" ? "every event (*)" : "EVENT_" + e }); }));
      var url = h("input", { type: "url", required: true, placeholder: "https://crm.example.com/livechat/events" });
      var method = h("select", h("option", "POST"), h("option", "GET"));
      var secret = h("div");
      var showSecret = h("button", { type: "button", text: "Show the signing secret" });
      showSecret.onclick = function () {
        api("GET", "/webhook-secret").then(function (s) { secret.textContent = ""; secret.appendChild(secretBox("Signing secret (HMAC-SHA256):", s.secret, "Your receiver checks X-Livechat-Signature with it.")); }, failed);
      };
      var rotate = h("button.danger", { type: "button", text: "Replace the secret" });
      rotate.onclick = function () {
        if (!confirm("Replace the signing secret? Receivers must learn the new one.")) return;
        api("POST", "/webhook-secret", {}).then(function (s) { secret.textContent = ""; secret.appendChild(secretBox("New signing secret:", s.secret, "Update your receivers now.")); }, failed);
      };
      add(main, [h("h1", "Webhooks"),
        h("p.muted", "The server calls these URLs on each event of the licence (the EVENT_* events of lc_serv.cfg, per licence)."),
        hooks.length ? h("table", h("thead", h("tr", ["Event", "URL", "Method", "State", "Actions"].map(function (t) { return h("th", { scope: "col", text: t }); }))), h("tbody", rows))
          : h("p", "No webhooks yet."),
        h("form.card", { onsubmit: function (e) {
          e.preventDefault();
          api("POST", "/webhooks", { event: event.value, url: url.value.trim(), method: method.value }).then(function () { say("Webhook added."); route(); }, failed);
        } }, h("h2", "Add a webhook"), h("div.row", field("Event", event), field("URL", url), field("Method", method),
          h("div", h("button.primary", { type: "submit", text: "Add" })))),
        h("div.toolbar", showSecret, rotate), secret]);
    });
  };

  // -- API keys --------------------------------------------------------------------
  RENDER.keys = function (main) {
    return api("GET", "/api-keys").then(function (r) {
      var rows = r.items.map(function (k) {
        var revoke = h("button.danger", { type: "button", text: "Revoke", disabled: k.revoked, "aria-label": "Revoke the key " + k.name });
        revoke.onclick = function () {
          if (confirm("Revoke the key " + k.name + "? Programs using it stop at once.")) api("DELETE", "/api-keys/" + k.id).then(function () { say("Key revoked."); route(); }, failed);
        };
        return h("tr", { className: k.revoked ? "disabled" : "" }, h("td", k.name), h("td", h("code", k.id)), h("td", k.scopes.join(", ")),
          h("td", when(k.createdAt)), h("td", h("span.pill." + (k.revoked ? "off" : "on"), k.revoked ? "revoked" : "active")), h("td.actions", revoke));
      });
      var name = h("input", { required: true, maxLength: 100, id: "key-name" });
      var scopes = ["api", "connector", "control"].map(function (s) { return h("input", { type: "checkbox", value: s, checked: s == "api" }); });
      var result = h("div", { id: "key-result" });
      add(main, [h("h1", "API keys"), h("p.muted", "Keys let your programs use the REST API (docs/api.md) of this licence."),
        result,
        rows.length ? h("table", h("thead", h("tr", ["Name", "Id", "Scopes", "Made", "State", "Actions"].map(function (t) { return h("th", { scope: "col", text: t }); }))), h("tbody", rows)) : null,
        h("form.card", { onsubmit: function (e) {
          e.preventDefault();
          var chosen = scopes.filter(function (s) { return s.checked; }).map(function (s) { return s.value; });
          api("POST", "/api-keys", { name: name.value.trim(), scopes: chosen }).then(function (k) {
            return RENDER.keys(clear(main)).then(function () {
              $("key-result").appendChild(secretBox("The key " + k.name + ":", k.key, "This is the only time the key is shown. Store it safely now."));
            });
          }).catch(failed);
        } }, h("h2", "Make a key"), h("div.row", field("Name", name),
          h("fieldset", h("legend", "Scopes"), check("REST API", scopes[0]), check("connector", scopes[1]), check("IWCS control", scopes[2])),
          h("div", h("button.primary", { type: "submit", text: "Make the key" }))))]);
    });
  };
  function clear(e) { e.textContent = ""; return e; }

  // -- transcripts -----------------------------------------------------------------
  RENDER.transcripts = function (main) {
    return operators().then(function (ops) {
      var byId = {};
      ops.forEach(function (o) { byId[o.id] = o.nick; });
      var text = h("input", { type: "search", id: "search-text", maxLength: 200, placeholder: "words in the messages" });
      var from = h("input", { type: "date" }), to = h("input", { type: "date" });
      var op = h("select", h("option", { value: "", text: "anyone" }), ops.map(function (o) { return h("option", { value: o.id, text: o.nick }); }));
      var status = h("select", h("option", { value: "", text: "any" }), ["closed", "active", "queued", "assigned", "requested"].map(function (s) { return h("option", s); }));
      var body = h("tbody"), more = h("button", { type: "button", text: "More", hidden: true });
      var exportCsv = h("a.button", { text: "Export CSV", download: "chats.csv" });
      var exportJson = h("a.button", { text: "Export JSON Lines", download: "chats.jsonl" });
      var count = h("p.muted", { "aria-live": "polite" });
      var after = 0, shown = 0;
      function query() {
        var q = ["kind=visitor"];
        if (text.value.trim()) q.push("q=" + encodeURIComponent(text.value.trim()));
        if (from.value) q.push("from=" + from.value);
        if (to.value) { var end = new Date(to.value + "T00:00:00"); end.setDate(end.getDate() + 1); q.push("to=" + end.getTime()); }
        if (op.value) q.push("operator=" + op.value);
        if (status.value) q.push("status=" + status.value);
        return q.join("&");
      }
      function load(reset) {
        if (reset) { after = 0; shown = 0; body.textContent = ""; }
        var q = query();
        exportCsv.href = "/api/v1/chats/export?format=csv&limit=500&" + q;
        exportJson.href = "/api/v1/chats/export?format=jsonl&limit=500&" + q;
        return api("GET", "/chats?limit=50&after=" + after + "&" + q).then(function (page) {
          page.items.forEach(function (c) {
            add(body, h("tr", h("td", h("a", { href: "#transcript/" + c.id, text: "Chat " + c.id })), h("td", when(c.createdAt)),
              h("td", [c.name, c.email].filter(Boolean).join(" \u00b7 ") || c.visitorId || ""),
              h("td", c.operatorId ? byId[c.operatorId] || "#" + c.operatorId : "\u2013"), h("td", c.status), h("td", c.closeReason || "")));
          });
          shown += page.items.length;
          after = page.next || 0;
          more.hidden = !page.next;
          count.textContent = shown ? shown + " chat" + (shown == 1 ? "" : "s") + (page.next ? " so far" : "") : "No chats found.";
        }, failed);
      }
      more.onclick = function () { load(false); };
      add(main, [h("h1", "Transcripts"),
        h("form.card", { role: "search", onsubmit: function (e) { e.preventDefault(); load(true); } },
          h("div.row", field("Text", text), field("From", from), field("To", to), field("Operator", op), field("State", status),
            h("div", h("button.primary", { type: "submit", text: "Search" })))),
        h("div.toolbar", exportCsv, exportJson), count,
        h("table", h("thead", h("tr", ["Chat", "Started", "Visitor", "Operator", "State", "Ended by"].map(function (t) { return h("th", { scope: "col", text: t }); }))), body),
        h("p", more)]);
      return load(true);
    });
  };
  function transcript(chatId) {
    return Promise.all([api("GET", "/chats/" + chatId), api("GET", "/chats/" + chatId + "/transcript")]);
  }
  function messagesOf(t) {
    return h("div.messages", t.messages.length ? t.messages.map(function (m) {
      return h("div.msg", h("div.meta", when(m.createdAt) + " \u00b7 " + (m.name || m.originatorId) + (m.role == "CONSUMER" ? " (visitor)" : "")),
        h("div.body", m.message));
    }) : h("p.muted", "No messages."));
  }
  function chatFacts(c) {
    return h("p.muted", "Started " + when(c.createdAt) + (c.closedAt ? ", ended " + when(c.closedAt) : "") +
      (c.name || c.email ? " \u00b7 visitor " + [c.name, c.email].filter(Boolean).join(", ") : "") +
      " \u00b7 " + c.status + (c.closeReason ? " (" + c.closeReason + ")" : ""));
  }
  RENDER.transcript = function (main, args) {
    var id = +args[0];
    return transcript(id).then(function (r) {
      add(main, [h("h1", "Chat " + id), chatFacts(r[0]),
        h("div.toolbar", h("a.button", { href: "#transcripts", text: "Back to the list" }),
          h("a.button", { href: "#print/" + id, text: "Print view" }),
          h("a.button", { href: "/api/v1/chats/" + id + "/transcript?format=text", download: "chat-" + id + ".txt", text: "Download as text" })),
        messagesOf(r[1])]);
    });
  };
  function printView(id) {
    var box = $("print");
    $("app").hidden = true;
    box.hidden = false;
    box.textContent = "";
    return transcript(+id).then(function (r) {
      var print = h("button.primary", { type: "button", text: "Print" });
      print.onclick = function () { window.print(); };
      add(box, [h("div.toolbar.no-print", print, h("a.button", { href: "#transcript/" + id, text: "Back" })),
        h("h1", "Chat " + id + " \u2014 licence " + session.licence), chatFacts(r[0]), messagesOf(r[1])]);
      D.title = "Chat " + id + " \u2014 print";
      print.focus();
    }, failed);
  }

  // -- event log -------------------------------------------------------------------
  RENDER.events = function (main, args) {
    var kind = args[0] == "account" ? "account" : "chat";
    var body = h("tbody"), more = h("button", { type: "button", text: "More", hidden: true }), after = 0;
    /* #events/filter/<event>/<chat id>: either may be empty */
    function arg(i) { try { return decodeURIComponent(args[i] || ""); } catch (e) { return ""; } }
    var only = args[0] == "filter" ? { event: arg(1), chat: arg(2) } : { event: "", chat: "" };
    var filter = "";
    if (only.event) filter += "&event=" + encodeURIComponent(only.event);
    if (only.chat) filter += "&chat=" + encodeURIComponent(only.chat);
    var eventInput = h("input", { name: "event", maxLength: 64, placeholder: "CHAT_STARTED", value: only.event });
    var chatInput = h("input", { name: "chat", type: "number", min: 1, value: only.chat });
    var form = kind == "chat" ? h("form.row", { id: "events-filter", onsubmit: function (e) {
      e.preventDefault();
      location.hash = "#events/filter/" + encodeURIComponent(eventInput.value.trim().toUpperCase()) + "/" + chatInput.value;
    } }, field("Event", eventInput), field("Chat", chatInput), h("div", h("button", { type: "submit", text: "Filter" }))) : null;
    function load() {
      return api("GET", (kind == "account" ? "/account-events" : "/events") + "?limit=100&after=" + after + filter).then(function (page) {
        page.items.forEach(function (e) {
          var fields = Object.keys(e.fields || {}).sort().map(function (k) { return k + "=" + (typeof e.fields[k] == "object" ? JSON.stringify(e.fields[k]) : e.fields[k]); }).join("  ");
          add(body, h("tr", h("td", String(e.id)), h("td", when(e.createdAt)), h("td", e.event),
            h("td", e.chatId ? h("a", { href: "#transcript/" + e.chatId, text: String(e.chatId) }) : ""), h("td.fields", fields)));
        });
        after = page.next || after;
        more.hidden = !page.next;
        if (!body.children.length) add(body, h("tr", h("td", { colSpan: 5, text: "No events yet." })));
      }, failed);
    }
    more.onclick = load;
    add(main, [h("h1", "Event log"),
      h("div.toolbar", h("a.button", { href: "#events", "aria-current": kind == "chat" ? "true" : null, text: "Chats and presence" }),
        h("a.button", { href: "#events/account", "aria-current": kind == "account" ? "true" : null, text: "Accounts" })),
      form,
      h("table", h("thead", h("tr", ["#", "When", "Event", "Chat", "Fields"].map(function (t) { return h("th", { scope: "col", text: t }); }))), body),
      h("p", more)]);
    return load();
  };

  // -- reports ---------------------------------------------------------------------
  var SVG = "http://www.w3.org/2000/svg";
  function s(tag, attrs, text) {
    var e = D.createElementNS(SVG, tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text != null) e.textContent = text;
    return e;
  }
  /* A bar chart: labels along x, one or two stacked series. */
  function barChart(title, labels, series, options) {
    options = options || {};
    var W = 560, H = 220, left = 36, bottom = 28, top = 10, right = 8;
    var totals = labels.map(function (_, i) { return series.reduce(function (t, sr) { return t + (sr.values[i] || 0); }, 0); });
    var max = Math.max(1, Math.max.apply(null, totals.concat([0])));
    var step = Math.pow(10, Math.floor(Math.log10(max))), ticks = Math.ceil(max / step);
    if (ticks < 3 && step > 1) { step /= 2; ticks = Math.ceil(max / step); }
    var top_ = step * ticks, plotH = H - top - bottom, plotW = W - left - right;
    var id = "c" + ++uid;
    var svg = s("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-labelledby": id + "-t " + id + "-d", "class": "chart-svg" });
    svg.appendChild(s("title", { id: id + "-t" }, title));
    svg.appendChild(s("desc", { id: id + "-d" }, options.desc || ("Highest value " + max + ".")));
    for (var t = 0; t <= ticks; t++) {
      var y = top + plotH - (t * step / top_) * plotH;
      svg.appendChild(s("line", { x1: left, x2: W - right, y1: y, y2: y, "class": t ? "grid" : "axis" }));
      svg.appendChild(s("text", { x: left - 4, y: y + 4, "text-anchor": "end" }, options.format ? options.format(t * step) : String(Math.round(t * step * 100) / 100)));
    }
    var bw = plotW / Math.max(1, labels.length), every = Math.ceil(labels.length / 10);
    labels.forEach(function (label, i) {
      var base = top + plotH;
      series.forEach(function (sr) {
        var v = sr.values[i] || 0, hgt = (v / top_) * plotH;
        if (hgt > 0) {
          var bar = Math.max(1, Math.min(48, bw * 0.7));
          var rect = s("rect", { x: left + i * bw + (bw - bar) / 2, y: base - hgt, width: bar, height: hgt, "class": "bar " + (sr.cls || "") });
          rect.appendChild(s("title", {}, label + ": " + (options.format ? options.format(v) : v) + " " + sr.name));
          svg.appendChild(rect);
          base -= hgt;
        }
      });
      if (i % every == 0) svg.appendChild(s("text", { x: left + i * bw + bw / 2, y: H - 10, "text-anchor": "middle" }, label));
    });
    var legend = series.length > 1 ? h("p.legend", series.map(function (sr) { return [h("span.key" + (sr.cls ? "." + sr.cls : ""), { "aria-hidden": "true" }), sr.name]; })) : null;
    var table = h("table", h("thead", h("tr", h("th", { scope: "col", text: options.labelName || "Day" }), series.map(function (sr) { return h("th", { scope: "col", text: sr.name }); }))),
      h("tbody", labels.map(function (label, i) { return h("tr", h("th", { scope: "row", text: label }), series.map(function (sr) { return h("td", options.format ? options.format(sr.values[i] || 0) : String(sr.values[i] || 0)); })); })));
    return h("figure.chart", h("figcaption", title), svg, legend, h("details", h("summary", "The numbers"), table));
  }
  function isoDay(d) { return d.getFullYear() + "-" + String(d.getMonth() + 1).padStart(2, "0") + "-" + String(d.getDate()).padStart(2, "0"); }
  RENDER.reports = function (main) {
    var today = new Date(), start = new Date();
    start.setDate(today.getDate() - 29);
    var from = h("input", { type: "date", value: isoDay(start), id: "report-from" });
    var to = h("input", { type: "date", value: isoDay(today), id: "report-to" });
    var tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    var out = h("div", { id: "reports" });
    function load() {
      var q = "?from=" + from.value + "&to=" + to.value + "&tz=" + encodeURIComponent(tz);
      return all(["/reports/chats" + q, "/reports/first-response" + q, "/reports/missed" + q, "/reports/operators" + q]).then(function (r) {
        out.textContent = "";
        var chats = r[0], first = r[1], missed = r[2], ops = r[3];
        var days = chats.days.map(function (d) { return d.date.slice(5); });
        var classNames = ["< 30 s", "30\u201360 s", "1\u20132 min", "2\u20135 min", "5\u201310 min", "\u2265 10 min"];
        add(out, [
          h("p", "Visitor chats: " + chats.total.chats + " \u00b7 accepted " + chats.total.accepted + " \u00b7 missed " + chats.total.missed +
            " \u00b7 average first response " + seconds(first.averageMS) + " (" + tz + ")."),
          h("div.charts",
            barChart("Chats per day", days, [
              { name: "missed", cls: "missed", values: chats.days.map(function (d) { return d.missed; }) },
              { name: "other chats", values: chats.days.map(function (d) { return d.chats - d.missed; }) }
            ], { desc: chats.total.chats + " chats, " + chats.total.missed + " missed, from " + chats.from + " to " + chats.to + "." }),
            barChart("First response time", classNames, [{ name: "chats", values: first.classes.map(function (c) { return c.chats; }) }],
              { labelName: "Time", desc: first.answered + " chats answered; average " + seconds(first.averageMS) + "." }),
            barChart("Missed chats per day", days, [{ name: "missed", cls: "missed", values: missed.days.map(function (d) { return d.missed; }) }],
              { desc: missed.missed + " missed chats." }),
            barChart("Chats per operator", ops.items.map(function (o) { return o.nick || "#" + o.operatorId; }), [{ name: "chats", values: ops.items.map(function (o) { return o.chats; }) }],
              { labelName: "Operator", desc: "Chats each operator had, of " + ops.items.length + " operators." })),
          h("h2", "Per-operator load"),
          h("table", h("thead", h("tr", ["Operator", "Chats", "Messages", "Time in chats", "Average chat"].map(function (t) { return h("th", { scope: "col", text: t }); }))),
            h("tbody", ops.items.map(function (o) { return h("tr", h("td", o.nick || "#" + o.operatorId), h("td", String(o.chats)), h("td", String(o.messages)), h("td", seconds(o.talkMS)), h("td", seconds(o.averageMS))); }))),
          h("h2", "Latest missed chats"),
          missed.chats.length ? h("ul", missed.chats.map(function (c) {
            return h("li", h("a", { href: "#transcript/" + c.id, text: "Chat " + c.id }), " \u00b7 " + when(c.createdAt) + (c.name ? " \u00b7 " + c.name : "") + (c.closeReason ? " \u00b7 " + c.closeReason : ""));
          })) : h("p.muted", "None in these days.")
        ]);
      }, failed);
    }
    add(main, [h("h1", "Reports"),
      h("form.row", { onsubmit: function (e) { e.preventDefault(); load(); } }, field("From", from), field("To", to),
        h("div", h("button.primary", { type: "submit", text: "Show" }))), out]);
    return load();
  };

  // -- start -----------------------------------------------------------------------
  fetch("/auth/session", { credentials: "same-origin" }).then(function (r) {
    if (r.status != 200) return showLogin("");
    return r.json().then(started);
  }, function () { showLogin("The server cannot be reached."); });
})();
