// runtime-grader's pages work without this script; it adds drag and drop to the upload form, the
// live progress of a grading (server-sent events), and sorting and filtering of the gradebook.
"use strict";

function setUpDropzone(zone) {
  const input = zone.querySelector("input[type=file]");
  const name = zone.querySelector("[data-dropzone-name]");
  const show = () => { name.textContent = input.files.length ? "Selected: " + input.files[0].name : ""; };
  input.addEventListener("change", show);
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer && e.dataTransfer.files.length) {
      input.files = e.dataTransfer.files;
      show();
    }
  });
}

// Follows a submission's events; when grading is done, the page's main part is replaced by the
// server's new rendering of it, without reloading the page.
function followProgress(box) {
  const text = document.getElementById("progress-text");
  const bar = document.getElementById("progress-bar");
  const source = new EventSource(box.dataset.events);
  const say = (words, done, total) => {
    text.textContent = words;
    if (total) { bar.hidden = false; bar.max = total; bar.value = done; }
  };
  source.addEventListener("queued", (e) => say("Queued: position " + JSON.parse(e.data).position + " in the queue."));
  source.addEventListener("checking", () => say("Checking the upload…"));
  source.addEventListener("building", () => say("Building your crate…"));
  source.addEventListener("testing", (e) => {
    const d = JSON.parse(e.data);
    say("Running the tests: test " + d.done + " of " + d.total + " finished.", d.done, d.total);
  });
  source.addEventListener("done", async () => {
    source.close();
    say("Done. Loading the report…");
    const response = await fetch(location.href, { credentials: "same-origin" });
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    document.getElementById("main").replaceWith(page.getElementById("main"));
    document.title = page.title;
  });
}

function setUpGradebook(table) {
  const body = table.tBodies[0];
  table.querySelectorAll("thead th").forEach((th, column) => {
    th.querySelector("button").addEventListener("click", () => {
      const ascending = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("thead th").forEach((other) => other.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const numeric = th.dataset.sort === "number";
      const key = (row) => row.children[column].dataset.key;
      const rows = Array.from(body.rows).sort((a, b) => {
        const order = numeric ? Number(key(a)) - Number(key(b)) : key(a).localeCompare(key(b));
        return ascending ? order : -order;
      });
      rows.forEach((row) => body.appendChild(row));
    });
  });
  const filter = document.querySelector("[data-filter=gradebook]");
  if (filter) {
    filter.addEventListener("input", () => {
      const words = filter.value.trim().toLowerCase();
      Array.from(body.rows).forEach((row) => {
        row.hidden = words !== "" && !row.dataset.name.toLowerCase().includes(words);
      });
    });
  }
}

document.querySelectorAll("[data-dropzone]").forEach(setUpDropzone);
const progress = document.getElementById("progress");
if (progress && window.EventSource) followProgress(progress);
const gradebook = document.getElementById("gradebook");
if (gradebook) setUpGradebook(gradebook);
