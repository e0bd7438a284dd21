// Progressive help for the Vaultaire console: files chosen or dropped go up one by one with a
// progress bar (through the console, which streams them on to S3; large ones as multipart
// uploads a part at a time, aborted on Cancel), and the copy button.
// Every page works without this file, except drag-and-drop.
"use strict";

// Files above the form's part size go up as S3 multipart uploads, a slice at a time.
const MAX_PARTS = 10000;

// The transfer running now, so that Cancel can stop it.
let current = null;

class Cancelled extends Error {
  constructor() {
    super("cancelled");
  }
}

// One request through the console: resolves with the parsed JSON answer; onprogress gets the
// bytes sent of this body.
function send(method, url, form, body, headers, onprogress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.setRequestHeader("X-CSRF-Token", form.dataset.csrf);
    for (const [name, value] of Object.entries(headers || {})) xhr.setRequestHeader(name, value);
    if (onprogress) {
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) onprogress(e.loaded);
      };
    }
    xhr.onload = () => {
      let answer = {};
      try {
        answer = JSON.parse(xhr.responseText || "{}");
      } catch (e) {
        answer = {};
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(answer);
      else reject(new Error(answer.error || xhr.status + " " + xhr.statusText));
    };
    xhr.onerror = () => reject(new Error("network error"));
    xhr.onabort = () => reject(new Cancelled());
    if (current) current.xhr = xhr;
    xhr.send(body);
  });
}

function step(form, name, query) {
  const params = new URLSearchParams(query);
  return form.dataset.multipart + "/" + name + "?" + params.toString();
}

function uploadOne(form, file, bar) {
  const key = form.dataset.prefix + file.name;
  const type = file.type ? { "Content-Type": file.type } : {};
  return send("PUT", form.dataset.put + "?key=" + encodeURIComponent(key), form, file, type, (n) => {
    bar.value = n / file.size;
  });
}

async function uploadParts(form, file, bar) {
  const key = form.dataset.prefix + file.name;
  const size = Math.max(Number(form.dataset.partSize), Math.ceil(file.size / MAX_PARTS / 1048576) * 1048576);
  const type = file.type ? { "Content-Type": file.type } : {};
  const created = await send("POST", step(form, "create", { key }), form, null, type);
  const upload = created.upload;
  current.abort = () => send("POST", step(form, "abort", { key, upload }), form, null);
  // Leaving the page mid-upload: the abort goes as a beacon, its token in the body (not the URL).
  current.beacon = () => navigator.sendBeacon(step(form, "abort", { key, upload }), new URLSearchParams({ csrf: form.dataset.csrf }));
  const parts = [];
  let done = 0;
  for (let start = 0, part = 1; start < file.size; start += size, part += 1) {
    if (current.cancelled) throw new Cancelled();
    const slice = file.slice(start, Math.min(file.size, start + size));
    const sent = await send("PUT", step(form, "part", { key, upload, part }), form, slice, {}, (n) => {
      bar.value = (done + n) / file.size;
    });
    parts.push({ part, etag: sent.etag });
    done += slice.size;
    bar.value = done / file.size;
  }
  current.abort = null;
  current.beacon = null;
  await send("POST", step(form, "complete", { key, upload }), form, JSON.stringify(parts), {
    "Content-Type": "application/json",
  });
}

async function uploadAll(form, files) {
  const box = document.getElementById("progress");
  const cancel = document.getElementById("cancel");
  box.textContent = "";
  delete box.dataset.state;
  let failed = 0;
  for (const file of files) {
    const row = document.createElement("div");
    const label = document.createElement("span");
    label.textContent = file.name + " ";
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = 0;
    row.append(label, bar);
    box.append(row);
    current = { xhr: null, abort: null, beacon: null, cancelled: false };
    cancel.hidden = false;
    try {
      if (file.size > Number(form.dataset.partSize)) await uploadParts(form, file, bar);
      else await uploadOne(form, file, bar);
      bar.value = 1;
      row.className = "done";
    } catch (e) {
      failed += 1;
      const abort = current.abort;
      if (abort) {
        // Free the parts already stored; a failure here leaves them to the bucket's lifecycle.
        try {
          await abort();
        } catch (ignored) {
          // shown below as not uploaded all the same
        }
      }
      row.className = e instanceof Cancelled ? "cancelled" : "failed";
      label.textContent = file.name + (e instanceof Cancelled ? ": cancelled " : ": not uploaded (" + e.message + ") ");
      if (e instanceof Cancelled) {
        box.dataset.state = "cancelled";
        cancel.hidden = true;
        current = null;
        return;
      }
    }
    cancel.hidden = true;
    current = null;
  }
  box.dataset.state = failed ? "failed" : "done";
  if (!failed) window.location.reload();
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("upload");
  if (form) {
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const input = document.getElementById("file");
      if (input.files.length) uploadAll(form, Array.from(input.files));
    });
    window.addEventListener("pagehide", () => {
      if (current && current.beacon) current.beacon();
    });
    document.getElementById("cancel").addEventListener("click", () => {
      if (!current) return;
      current.cancelled = true;
      if (current.xhr) current.xhr.abort();
    });
    const zone = document.getElementById("dropzone");
    zone.hidden = false;
    for (const name of ["dragenter", "dragover"]) {
      zone.addEventListener(name, (e) => {
        e.preventDefault();
        zone.classList.add("over");
      });
    }
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("over");
      uploadAll(form, Array.from(e.dataTransfer.files));
    });
  }
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const field = document.getElementById(button.dataset.copy);
      field.select();
      try {
        await navigator.clipboard.writeText(field.value);
      } catch (e) {
        document.execCommand("copy");
      }
      button.textContent = "Copied";
    });
  }
});
