// The console: every action is a call to the public REST API with the key as a Bearer header.
// The key lives in sessionStorage (this tab only); it never goes into a URL, a cookie or a log.
// Agent-provided text is only ever set with textContent, never parsed as HTML.
"use strict";
(function () {
  var KEY_NAME = "outputlayer.apiKey";
  var PAGE_SIZE = 20;
  var THUMBNAIL_MAX_BYTES = 5000000;
  var OPEN_LINK_SECONDS = 900;
  var TYPE_ALIASES = { "text/xml": "application/xml", "application/x-zip-compressed": "application/zip" };
  var SHORT_TYPES = {
    "application/json": "JSON", "application/octet-stream": "BIN", "application/pdf": "PDF",
    "application/xml": "XML", "application/zip": "ZIP", "image/gif": "GIF", "image/jpeg": "JPG",
    "image/png": "PNG", "image/webp": "WEBP", "text/csv": "CSV", "text/html": "HTML", "text/plain": "TXT"
  };

  var state = { cursors: [null], page: 0, nextCursor: null, objectUrls: [], pendingDelete: null, loads: 0 };

  function $(id) { return document.getElementById(id); }

  function apiKey() { return sessionStorage.getItem(KEY_NAME); }

  function newIdempotencyKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function ApiError(status, body) {
    this.status = status;
    this.code = (body && body.error) || "http_" + status;
    this.message = (body && body.message) || "The server answered " + status + ".";
  }

  // One REST call; resolves with the JSON body, rejects with an ApiError.
  function api(method, path, body, headers, key) {
    var init = { method: method, cache: "no-store", headers: { Accept: "application/json" } };
    init.headers.Authorization = "Bearer " + (key || apiKey());
    Object.keys(headers || {}).forEach(function (name) { init.headers[name] = headers[name]; });
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (json) {
        if (!response.ok) {
          var error = new ApiError(response.status, json);
          if (response.status === 401) signOut("This key is not valid any more. Sign in again.");
          throw error;
        }
        return json;
      });
    });
  }

  function humanBytes(size) {
    if (size < 1000) return size === 1 ? "1 byte" : size + " bytes";
    var units = ["kB", "MB", "GB", "TB"];
    var value = size;
    for (var i = 0; i < units.length; i++) {
      value /= 1000;
      if (value < 1000 || i === units.length - 1) return (value < 100 ? value.toFixed(1) : value.toFixed(0)) + " " + units[i];
    }
    return size + " bytes";
  }

  function humanUntil(iso) {
    var seconds = Math.floor((Date.parse(iso) - Date.now()) / 1000);
    if (!(seconds > 0)) return "ended";
    if (seconds >= 86400) return "in " + Math.floor(seconds / 86400) + " d " + Math.floor((seconds % 86400) / 3600) + " h";
    if (seconds >= 3600) return "in " + Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
    return "in " + Math.max(1, Math.floor(seconds / 60)) + " min";
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function showError(id, message) {
    var node = $(id);
    node.textContent = message || "";
    node.hidden = !message;
  }

  // --- signing in and out ------------------------------------------------------------------

  function signIn(candidate, quiet) {
    showError("signin-error", "");
    return api("GET", "/v1/credits/balance", undefined, undefined, candidate).then(function (balance) {
      sessionStorage.setItem(KEY_NAME, candidate);
      $("api-key").value = "";
      $("signin").hidden = true;
      $("workspace").hidden = false;
      $("sign-out").hidden = false;
      var label = $("account-label");
      label.textContent = "key …" + candidate.slice(-6);
      label.hidden = false;
      showQuota(balance);
      resetPaging();
      return loadPage();
    }).catch(function (error) {
      if (!quiet) showError("signin-error", error.message || "Could not sign in.");
      if (quiet) sessionStorage.removeItem(KEY_NAME);
    });
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY_NAME);
    releaseThumbnails();
    $("artifact-rows").textContent = "";
    $("workspace").hidden = true;
    $("sign-out").hidden = true;
    $("account-label").hidden = true;
    $("signin").hidden = false;
    showError("signin-error", message || "");
  }

  // --- quota -------------------------------------------------------------------------------

  function showQuota(balance) {
    $("quota-free").textContent = String(balance.freeRemaining);
    $("quota-credits").textContent = String(balance.creditsRemaining);
    $("quota-plan").textContent = String(balance.planTier);
    var used = balance.storageUsedBytes, limit = balance.storageLimitBytes;
    var percent = limit > 0 ? Math.min(100, (used / limit) * 100) : 0;
    $("quota-storage").textContent = humanBytes(used) + " of " + humanBytes(limit) + " used";
    var fill = $("storage-fill");
    fill.style.width = (used > 0 ? Math.max(percent, 1) : 0) + "%";
    fill.classList.toggle("full", percent >= 90);
    $("storage-bar").setAttribute("aria-valuenow", String(Math.round(percent)));
  }

  function refreshQuota() {
    return api("GET", "/v1/credits/balance").then(showQuota).catch(function () {});
  }

  // --- listing -----------------------------------------------------------------------------

  function resetPaging() {
    state.cursors = [null];
    state.page = 0;
  }

  function loadPage() {
    var params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    var cursor = state.cursors[state.page];
    if (cursor) params.set("cursor", cursor);
    if ($("filter-status").value) params.set("status", $("filter-status").value);
    if ($("filter-type").value) params.set("mimeType", $("filter-type").value);
    showError("list-error", "");
    // Filters can change while a page is on its way: only the latest request may render.
    var sequence = ++state.loads;
    return api("GET", "/v1/outputs?" + params.toString()).then(function (page) {
      if (sequence !== state.loads) return;
      state.nextCursor = page.pageInfo.hasMore ? page.pageInfo.nextCursor : null;
      renderRows(page.outputs);
      $("page-prev").disabled = state.page === 0;
      $("page-next").disabled = !state.nextCursor;
      $("page-info").textContent = page.outputs.length ? "Page " + (state.page + 1) : "";
    }).catch(function (error) { showError("list-error", error.message); });
  }

  function releaseThumbnails() {
    state.objectUrls.forEach(function (url) { URL.revokeObjectURL(url); });
    state.objectUrls = [];
  }

  function renderRows(outputs) {
    releaseThumbnails();
    var body = $("artifact-rows");
    body.textContent = "";
    $("list-empty").hidden = outputs.length > 0;
    outputs.forEach(function (output) { body.appendChild(renderRow(output)); });
  }

  function renderRow(output) {
    var row = element("tr");
    row.setAttribute("data-output-id", output.outputId);
    row.setAttribute("data-status", output.status);

    var thumb = element("div", "thumb", SHORT_TYPES[output.mimeType] || "FILE");
    var thumbCell = element("td");
    thumbCell.appendChild(thumb);
    row.appendChild(thumbCell);
    if (output.status === "ready" && output.mimeType.indexOf("image/") === 0 && output.sizeBytes <= THUMBNAIL_MAX_BYTES) {
      loadThumbnail(output, thumb);
    }

    var name = element("td", "name-cell");
    name.appendChild(element("div", "name", output.label || "Untitled"));
    name.appendChild(element("div", "sub", output.outputId));
    row.appendChild(name);
    row.appendChild(element("td", "col-type", output.mimeType));
    row.appendChild(element("td", "col-size", humanBytes(output.sizeBytes)));
    var statusCell = element("td");
    statusCell.appendChild(element("span", "status status-" + output.status, output.status));
    row.appendChild(statusCell);
    var expires = output.status === "ready" ? humanUntil(output.expiresAt) : output.status === "deleted" ? "—" : "ended";
    row.appendChild(element("td", "col-expires", expires));

    var actions = element("div", "actions");
    if (output.status === "ready") {
      actions.appendChild(actionButton("Open", "open", function (button) { openPreview(output, button); }));
      actions.appendChild(actionButton("Share", "share", function (button) { share(output, button); }));
      actions.appendChild(actionButton("Delete", "delete", function () { askDelete(output); }));
    }
    var actionCell = element("td");
    actionCell.appendChild(actions);
    row.appendChild(actionCell);
    return row;
  }

  function actionButton(text, action, onClick) {
    var button = element("button", "button ghost small", text);
    button.type = "button";
    button.setAttribute("data-action", action);
    button.addEventListener("click", function () { onClick(button); });
    return button;
  }

  function loadThumbnail(output, holder) {
    function show(src) {
      var image = element("img");
      image.alt = "";
      image.src = src;
      holder.textContent = "";
      holder.appendChild(image);
    }
    if (output.publicUrl) {
      show(output.publicUrl);
      return;
    }
    fetch(output.contentUrl, { headers: { Authorization: "Bearer " + apiKey() }, cache: "no-store" })
      .then(function (response) { if (!response.ok) throw new Error(); return response.blob(); })
      .then(function (blob) {
        var url = URL.createObjectURL(blob);
        state.objectUrls.push(url);
        show(url);
      })
      .catch(function () {});
  }

  // --- open, share, delete -----------------------------------------------------------------

  function openPreview(output, button) {
    // The preview is the same page a share link shows; a short-lived link opens it without the key.
    var opened = window.open("", "_blank");
    if (opened) opened.opener = null;
    button.disabled = true;
    api("POST", "/v1/outputs/" + encodeURIComponent(output.outputId) + "/share", { expiresInSeconds: OPEN_LINK_SECONDS })
      .then(function (link) {
        if (opened) opened.location.replace(link.shareUrl);
        else window.location.assign(link.shareUrl);
      })
      .catch(function (error) {
        if (opened) opened.close();
        showError("list-error", error.message);
      })
      .then(function () { button.disabled = false; });
  }

  function share(output, button) {
    button.disabled = true;
    api("POST", "/v1/outputs/" + encodeURIComponent(output.outputId) + "/share", {})
      .then(function (link) {
        $("share-url").value = link.shareUrl;
        $("share-expiry").textContent = "Anyone with this link can view and download “" + (output.label || "Untitled") +
          "” until " + new Date(link.shareExpiresAt).toLocaleString() + ".";
        $("share-copied").textContent = "";
        $("share-dialog").showModal();
        $("share-url").select();
      })
      .catch(function (error) { showError("list-error", error.message); })
      .then(function () { button.disabled = false; });
  }

  function copyShareUrl() {
    var input = $("share-url");
    function done() { $("share-copied").textContent = "Copied to the clipboard."; }
    function fallback() {
      input.select();
      try {
        document.execCommand("copy");
        done();
      } catch (error) {
        $("share-copied").textContent = "Select the link and copy it.";
      }
    }
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(input.value).then(done, fallback);
    else fallback();
  }

  function askDelete(output) {
    state.pendingDelete = output;
    $("delete-name").textContent = output.label || output.outputId;
    $("delete-dialog").showModal();
  }

  function confirmDelete() {
    var output = state.pendingDelete;
    $("delete-dialog").close();
    if (!output) return;
    state.pendingDelete = null;
    api("DELETE", "/v1/outputs/" + encodeURIComponent(output.outputId))
      .then(function () { return Promise.all([loadPage(), refreshQuota()]); })
      .catch(function (error) { showError("list-error", error.message); });
  }

  // --- upload (SPEC section 14: an upload link, then the bytes straight to it) --------------

  function mimeTypeOf(file) {
    var type = (file.type || "").toLowerCase();
    type = TYPE_ALIASES[type] || type;
    return SHORT_TYPES[type] ? type : "application/octet-stream";
  }

  function uploadStatus(name, percent, message, outcome) {
    $("upload-status").hidden = false;
    $("upload-name").textContent = name;
    $("upload-percent").textContent = Math.round(percent) + "%";
    var fill = $("upload-fill");
    fill.style.width = percent + "%";
    fill.classList.toggle("done", outcome === "done");
    fill.classList.toggle("failed", outcome === "failed");
    $("upload-message").textContent = message;
  }

  function putBytes(link, file) {
    return new Promise(function (resolve, reject) {
      var request = new XMLHttpRequest();
      request.open(link.method || "PUT", link.uploadUrl);
      request.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable) uploadStatus(file.name, (event.loaded / event.total) * 100, "Uploading…");
      });
      request.addEventListener("load", function () {
        var body = null;
        try { body = JSON.parse(request.responseText); } catch (error) { body = null; }
        if (request.status >= 200 && request.status < 300) resolve(body);
        else reject(new ApiError(request.status, body));
      });
      request.addEventListener("error", function () { reject(new ApiError(0, { message: "The upload was interrupted." })); });
      request.send(file);
    });
  }

  function upload(file) {
    var fields = { mimeType: mimeTypeOf(file), label: file.name.slice(0, 200), sizeBytes: file.size };
    if ($("upload-public").checked) fields.public = true;
    uploadStatus(file.name, 0, "Asking for an upload link…");
    return api("POST", "/v1/uploads", fields, { "Idempotency-Key": newIdempotencyKey() })
      .then(function (link) { return putBytes(link, file); })
      .then(function (output) {
        uploadStatus(file.name, 100, "Stored as " + (output && output.outputId ? output.outputId : "a new artifact") + ".", "done");
        resetPaging();
        return Promise.all([loadPage(), refreshQuota()]);
      })
      .catch(function (error) { uploadStatus(file.name, 100, "Not stored: " + error.message, "failed"); });
  }

  function uploadAll(files) {
    var chain = Promise.resolve();
    Array.prototype.forEach.call(files, function (file) { chain = chain.then(function () { return upload(file); }); });
    return chain;
  }

  // --- wiring ------------------------------------------------------------------------------

  function wire() {
    $("signin-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var candidate = $("api-key").value.trim();
      if (candidate) signIn(candidate, false);
    });
    $("sign-out").addEventListener("click", function () { signOut(""); });
    $("filter-status").addEventListener("change", function () { resetPaging(); loadPage(); });
    $("filter-type").addEventListener("change", function () { resetPaging(); loadPage(); });
    $("page-next").addEventListener("click", function () {
      if (!state.nextCursor) return;
      state.cursors[state.page + 1] = state.nextCursor;
      state.page += 1;
      loadPage();
    });
    $("page-prev").addEventListener("click", function () {
      if (state.page === 0) return;
      state.page -= 1;
      loadPage();
    });
    $("share-copy").addEventListener("click", copyShareUrl);
    $("share-close").addEventListener("click", function () { $("share-dialog").close(); });
    $("delete-cancel").addEventListener("click", function () { state.pendingDelete = null; $("delete-dialog").close(); });
    $("delete-confirm").addEventListener("click", confirmDelete);

    var zone = $("dropzone");
    // A file dropped anywhere else must not make the browser navigate away to it.
    ["dragover", "drop"].forEach(function (name) {
      document.addEventListener(name, function (event) { event.preventDefault(); });
    });
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) {
        event.preventDefault();
        zone.classList.add("dragging");
      });
    });
    zone.addEventListener("dragleave", function () { zone.classList.remove("dragging"); });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      zone.classList.remove("dragging");
      if (event.dataTransfer && event.dataTransfer.files.length) uploadAll(event.dataTransfer.files);
    });
    $("file-input").addEventListener("change", function () {
      var files = Array.prototype.slice.call($("file-input").files);
      $("file-input").value = "";
      uploadAll(files);
    });

    var saved = apiKey();
    if (saved) signIn(saved, true);
  }

  wire();
})();
