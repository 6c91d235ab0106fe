// Urgent Alerts officers' pages: live preview, live counts (SSE), confirmations. No framework.
"use strict";
(function () {
  var csrf = (document.querySelector("input[name=csrf_token]") || {}).value || "";
  // the words this script writes, in the page's language (the JSON block of base.html)
  var texts = JSON.parse((document.getElementById("ui-text") || {}).textContent || "{}");
  var t = function (key, values) {
    return (texts[key] || key).replace(/%\((\w+)\)s/g, function (_, name) { return values[name]; });
  };
  var named = function (group, code) { return (texts[group] || {})[code] || code.replace("_", " "); };

  document.addEventListener("submit", function (ev) {
    var btn = ev.submitter;
    var msg = btn && btn.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) { ev.preventDefault(); }
  });

  // case form lists: typing in the last (empty) entry adds another empty one below it
  document.addEventListener("input", function (ev) {
    var li = ev.target.closest && ev.target.closest("ol.entries > li");
    if (!li || li.nextElementSibling || !ev.target.value) { return; }
    var next = li.cloneNode(true);
    next.querySelector("input").value = "";
    li.parentNode.appendChild(next);
  });

  // case form: a translatable field's languages as tabs (without this script they all show,
  // one below the other); each language but English shows the English being written, live
  var englishRef = function (ref) {
    var values = [];
    document.querySelectorAll('[name="' + ref.getAttribute("data-en-ref") + '"]').forEach(function (el) {
      if (el.value.trim()) { values.push(el.value.trim()); }
    });
    if (ref.tagName === "OL") {
      ref.textContent = "";
      values.forEach(function (v) { var li = document.createElement("li"); li.textContent = v; ref.appendChild(li); });
    } else {
      ref.textContent = values.join(" ");
    }
    ref.hidden = values.length === 0;
  };
  document.querySelectorAll("[data-tabs]").forEach(function (box) {
    var list = box.querySelector("[role=tablist]");
    var tabs = Array.prototype.slice.call(list.querySelectorAll("[role=tab]"));
    var select = function (tab, focus) {
      tabs.forEach(function (t) {
        var on = t === tab;
        t.setAttribute("aria-selected", on ? "true" : "false");
        t.tabIndex = on ? 0 : -1;
        var panel = document.getElementById(t.getAttribute("aria-controls"));
        panel.hidden = !on;
        if (on) { panel.querySelectorAll("[data-en-ref]").forEach(englishRef); }
      });
      if (focus) { tab.focus(); }
    };
    tabs.forEach(function (t, i) {
      t.addEventListener("click", function () { select(t, false); });
      t.addEventListener("keydown", function (ev) {
        var to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[ev.key];
        if (to === undefined) { return; }
        ev.preventDefault();
        select(tabs[(to + tabs.length) % tabs.length], true);
      });
    });
    list.hidden = false;
    box.classList.add("tabbed");
    select(tabs.filter(function (t) { return t.getAttribute("aria-selected") === "true"; })[0] || tabs[0], false);
  });

  var familySwitch = document.querySelector("[data-family-switch]");
  if (familySwitch) {
    familySwitch.addEventListener("change", function () {
      window.location.search = "?family=" + encodeURIComponent(familySwitch.value);
    });
  }

  var bubble = function (html) {
    return '<!doctype html><meta charset="utf-8"><body style="margin:0;background:#dfe7ef;font:15px/1.4 system-ui,sans-serif">' +
      '<div style="margin:8px;padding:8px 10px;background:#fff;border-radius:12px;white-space:pre-wrap;overflow-wrap:anywhere">' +
      html + "</div>";
  };

  var panel = document.querySelector("[data-preview]");
  if (panel) {
    var url = panel.getAttribute("data-preview");
    var post = panel.hasAttribute("data-post");
    var editor = document.getElementById("editor");
    var pick = function (name) { return panel.querySelector("[data-p=" + name + "]").value; };
    var show = function (sel, text) { panel.querySelector(sel).textContent = text; };
    var timer = null;
    var refresh = function () {
      var req;
      if (post) {
        var body = new FormData(editor);
        body.set("audience", pick("audience"));
        body.set("channel", pick("channel"));
        body.set("language", pick("language"));
        req = fetch(url, { method: "POST", body: body, headers: { "X-CSRF-Token": csrf, "Accept": "application/json" } });
      } else {
        var q = new URLSearchParams({ audience: pick("audience"), channel: pick("channel"), language: pick("language") });
        req = fetch(url + "?" + q.toString(), { headers: { "Accept": "application/json" } });
      }
      req.then(function (r) { return r.json().then(function (doc) { return [r.ok, doc]; }); })
        .then(function (res) {
          var err = panel.querySelector("[data-p-error]");
          var frame = panel.querySelector("[data-p-html]");
          if (!res[0]) {
            err.hidden = false; err.textContent = res[1].error ? res[1].error.message : t("preview_failed", {});
            return;
          }
          err.hidden = true;
          var telegram = res[1].channel === "telegram";  // no subject; its HTML as the chat shows it
          panel.querySelector("[data-p-subject]").parentNode.hidden = telegram;
          show("[data-p-subject]", res[1].subject || t("no_subject", {}));
          show("[data-p-text]", res[1].text);
          panel.querySelector("[data-p-text]").hidden = telegram;
          var doc = telegram ? bubble(res[1].text) : res[1].html;
          if (doc) { frame.hidden = false; frame.srcdoc = doc; } else { frame.hidden = true; }
          panel.setAttribute("data-ready", "1");
        })
        .catch(function () {
          panel.querySelector("[data-p-error]").hidden = false;
          show("[data-p-error]", t("network_error", {}));
        });
    };
    panel.querySelectorAll("select").forEach(function (s) { s.addEventListener("change", refresh); });
    panel.querySelector("[data-refresh]").addEventListener("click", refresh);
    if (editor) {
      editor.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(refresh, 600); });
    }
    refresh();
  }

  // who the alert will reach, when the page came before the count (a large network): filled
  // in from the count's own page, whose link stays for a reader without this script
  var counting = document.querySelector("[data-audience]");
  if (counting) {
    counting.setAttribute("aria-busy", "true");
    fetch(counting.getAttribute("data-audience"), { headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (!r.ok) { throw new Error(r.status); }
        return r.text();
      })
      .then(function (html) {
        var found = new DOMParser().parseFromString(html, "text/html").getElementById("audience");
        if (!found) { throw new Error("no count in the page"); }
        counting.replaceWith(document.importNode(found, true));
      })
      .catch(function () {
        counting.removeAttribute("aria-busy");
        counting.querySelector("[data-counting]").firstChild.textContent = t("count_failed", {}) + " ";
      });
  }

  var live = document.querySelector("[data-live]");
  if (live && window.EventSource) {
    var states = ["queued", "sending", "sent", "delivered", "deferred", "failed", "bounced", "suppressed", "cancelled"];
    var render = function (doc) {
      live.hidden = doc.total === 0;
      var body = live.querySelector("[data-counts]");
      body.textContent = "";
      Object.keys(doc.channels).forEach(function (ch) {
        var li = document.createElement("li");
        var name = document.createElement("strong"); name.textContent = named("channels", ch); li.appendChild(name);
        states.forEach(function (s) {
          var count = document.createElement("span"); count.className = "count";
          var n = document.createElement("span");
          n.setAttribute("data-cell", ch + ":" + s);
          n.textContent = doc.channels[ch][s] || 0;
          count.appendChild(n); count.appendChild(document.createTextNode(" " + named("states", s)));
          li.appendChild(document.createTextNode(" ")); li.appendChild(count);
        });
        body.appendChild(li);
      });
      var bar = live.querySelector("[data-progress]");
      bar.max = doc.total || 1; bar.value = doc.total - doc.open;
      bar.textContent = t("progress", { done: doc.total - doc.open, total: doc.total });
      live.querySelector("[data-live-state]").textContent = doc.open ? t("still_to_send", { n: doc.open }) : t("all_final", {});
      var badge = document.getElementById("status");
      if (badge && doc.state) {
        badge.className = "badge s-" + doc.state;
        badge.textContent = named("states", doc.state);
      }
    };
    var source = new EventSource(live.getAttribute("data-live"));
    source.addEventListener("counts", function (ev) { render(JSON.parse(ev.data)); });
    source.addEventListener("done", function (ev) {
      render(JSON.parse(ev.data)); live.setAttribute("data-done", "1"); source.close();
    });
  }
})();
