// Progressive help for the Vaultaire console: files chosen or dropped go up one by one with a
// progress bar (through the console, which streams them on to S3), and the copy button.
// Every page works without this file, except drag-and-drop.
"use strict";

function uploadOne(form, file, bar) {
  return new Promise((resolve, reject) => {
    const key = form.dataset.prefix + file.name;
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", form.dataset.put + "?key=" + encodeURIComponent(key));
    xhr.setRequestHeader("X-CSRF-Token", form.dataset.csrf);
    if (file.type) xhr.setRequestHeader("Content-Type", file.type);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) bar.value = e.loaded / e.total;
    };
    xhr.onload = () => (xhr.status >= 200 && xhr.status < 300 ? resolve() : reject(new Error(xhr.status + " " + xhr.statusText)));
    xhr.onerror = () => reject(new Error("network error"));
    xhr.send(file);
  });
}

async function uploadAll(form, files) {
  const box = document.getElementById("progress");
  box.textContent = "";
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
    try {
      await uploadOne(form, file, bar);
      bar.value = 1;
      row.className = "done";
    } catch (e) {
      failed += 1;
      row.className = "failed";
      label.textContent = file.name + ": not uploaded (" + e.message + ") ";
    }
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
