// The emotiond history page: per camera, a stacked chart of each emotion's share of the face-seconds per bucket,
// with valence, coverage and markers, from /api/history/summary; the tracks of the range from
// /api/history/tracks, and a track's timeline from /api/history/tracks/{id}. No dependencies.
"use strict";

const RANGES = {hour: {span: 3600, bucket: 60}, day: {span: 86400, bucket: 900}, week: {span: 7 * 86400, bucket: 3600}};
const TRACKS_PAGE = 50;
const COLORS = JSON.parse(document.body.dataset.emotionColors || "{}");  // the overlay's colours, by the server
const CHART_AXIS = "#9aa0a6", CHART_TEXT = "#e8e8e8", VALENCE = "#ffffff", MARKER = "#ff5fd2";
const GAP = "#3a3d42", COVERED = "#4fa3ff";
const FONT_PX = 11;
const LEFT = 40, RIGHT = 34, BOTTOM = 30;  // room for the share axis, the valence axis, the times and coverage
const COVERAGE_STRIP = 6;

let view = {range: "hour", since: 0, until: 0, bucket: 60, camera: ""};
let nextBefore = null;
let loads = 0;
const cameraNames = new Set();

function el(id) { return document.getElementById(id); }
function colour(emotion) { return COLORS[emotion] || "#888888"; }
function labelOrder(a, b) {
  const known = Object.keys(COLORS);
  const ia = known.indexOf(a), ib = known.indexOf(b);
  return (ia < 0 ? known.length : ia) - (ib < 0 ? known.length : ib) || a.localeCompare(b);
}

// ------------------------------------------------------------ formatting
function clock(t, withDate, withSeconds) {
  const d = new Date(t * 1000);
  const parts = {hour: "2-digit", minute: "2-digit"};
  if (withSeconds) parts.second = "2-digit";
  const time = d.toLocaleTimeString([], parts);
  return withDate ? `${d.toLocaleDateString([], {month: "short", day: "numeric"})} ${time}` : time;
}
function moment(t) { return new Date(t * 1000).toLocaleString(); }
function duration(s) {
  if (s === null || s === undefined) return "–";
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.round((s % 3600) / 60)).padStart(2, "0")} min`;
}
function signed(v) { return v === null || v === undefined ? "–" : (v > 0 ? "+" : "") + v.toFixed(2); }
function percent(v) { return v === null || v === undefined ? "–" : `${Math.round(v * 100)}%`; }
function dominantOf(shares) {
  let best = null;
  for (const [label, share] of Object.entries(shares)) if (best === null || share > shares[best]) best = label;
  return best;
}
function localInput(t) {  // Unix seconds as a datetime-local value, in the browser's zone
  const d = new Date(t * 1000);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

// ------------------------------------------------------------ the range, kept in the URL's hash
function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const range = params.get("range") || "hour";
  view.camera = params.get("camera") || "";
  if (range === "custom" && params.get("since") && params.get("until")) {
    view = {...view, range, since: Number(params.get("since")), until: Number(params.get("until")),
            bucket: Number(params.get("bucket")) || 300};
  } else {
    const chosen = RANGES[range] ? range : "hour";
    const until = Date.now() / 1000;
    view = {...view, range: chosen, since: until - RANGES[chosen].span, until, bucket: RANGES[chosen].bucket};
  }
}

function writeHash() {
  const params = new URLSearchParams({range: view.range});
  if (view.range === "custom") {
    params.set("since", String(view.since));
    params.set("until", String(view.until));
    params.set("bucket", String(view.bucket));
  }
  if (view.camera) params.set("camera", view.camera);
  const hash = `#${params}`;
  if (location.hash !== hash) history.replaceState(null, "", hash);
}

function windowQuery(extra) {
  const params = new URLSearchParams({since: String(view.since), until: String(view.until), ...extra});
  if (view.camera) params.set("camera", view.camera);
  return params.toString();
}

async function getJson(url) {
  const reply = await fetch(url);
  if (reply.status === 401) { location.href = "/login"; throw new Error("not logged in"); }
  const body = await reply.json();
  if (!reply.ok) throw new Error(body.error || reply.statusText);
  return body;
}

// ------------------------------------------------------------ charts
function sizeCanvas(canvas) {
  const scale = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width, height = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(width * scale) || canvas.height !== Math.round(height * scale)) {
    canvas.width = Math.round(width * scale);
    canvas.height = Math.round(height * scale);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(scale, 0, 0, scale, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = `${FONT_PX}px system-ui, sans-serif`;
  ctx.textBaseline = "middle";
  return {ctx, width, height};
}

// The legend: a swatch per emotion, then the lines ("valence", and "marker" or "event"); returns its height.
function drawLegend(ctx, labels, width, lines) {
  const row = FONT_PX + 5;
  let x = LEFT, y = 2;
  for (const label of [...labels, ...lines]) {
    const w = 14 + ctx.measureText(label).width + 10;
    if (x + w > width && x > LEFT) { x = LEFT; y += row; }
    const line = lines.includes(label);
    ctx.fillStyle = label === "valence" ? VALENCE : line ? MARKER : colour(label);
    if (line) ctx.fillRect(x, y + 6, 10, 2); else ctx.fillRect(x, y + 2, 10, 10);
    ctx.fillStyle = CHART_TEXT;
    ctx.fillText(label, x + 14, y + 7);
    x += w;
  }
  return y + row + 2;
}

function drawAxes(ctx, plot, since, until) {
  ctx.strokeStyle = CHART_AXIS;
  ctx.fillStyle = CHART_AXIS;
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(plot.x - 0.5, plot.y);
  ctx.lineTo(plot.x - 0.5, plot.y + plot.h + 0.5);
  ctx.lineTo(plot.x + plot.w, plot.y + plot.h + 0.5);
  ctx.moveTo(plot.x + plot.w + 0.5, plot.y);
  ctx.lineTo(plot.x + plot.w + 0.5, plot.y + plot.h);
  ctx.stroke();
  for (const share of [0, 50, 100]) {
    const y = plot.y + plot.h * (1 - share / 100);
    ctx.textAlign = "right";
    ctx.fillText(`${share}%`, plot.x - 5, Math.min(plot.y + plot.h - 4, Math.max(plot.y + 4, y)));
  }
  for (const v of [-1, 0, 1]) {
    const y = plot.y + plot.h * (1 - (v + 1) / 2);
    ctx.textAlign = "left";
    ctx.fillText(v > 0 ? "+1" : String(v), plot.x + plot.w + 5, Math.min(plot.y + plot.h - 4, Math.max(plot.y + 4, y)));
  }
  const span = until - since, withDate = span > 86400, withSeconds = span < 600;
  const ticks = Math.max(2, Math.min(8, Math.floor(plot.w / 110)));
  for (let i = 0; i <= ticks; i++) {
    const t = since + span * i / ticks, x = plot.x + plot.w * i / ticks;
    ctx.fillRect(Math.round(x), plot.y + plot.h + 1, 1, 3);
    ctx.textAlign = i === 0 ? "left" : i === ticks ? "right" : "center";
    ctx.fillText(clock(t, withDate, withSeconds), x, plot.y + plot.h + COVERAGE_STRIP + 14);
  }
  ctx.textAlign = "left";
}

// Stacked bars of each emotion's share per bucket; a bucket with no frames at all is a grey gap (never "neutral");
// the strip under the bars is the coverage (frames analysed of those captured); the white line is the valence.
function drawCamera(canvas, buckets, markers, since, until, bucketSeconds) {
  const {ctx, width, height} = sizeCanvas(canvas);
  const labels = [...new Set(buckets.flatMap((b) => Object.keys(b.shares)))].sort(labelOrder);
  const top = drawLegend(ctx, labels, width - RIGHT, ["valence", "marker"]) + 4;
  const plot = {x: LEFT, y: top, w: width - LEFT - RIGHT, h: Math.max(20, height - top - BOTTOM)};
  // whole buckets: the first may start before since, the last end after until
  const from = buckets.length ? Math.min(since, buckets[0].start) : since;
  const to = Math.max(until, buckets.length ? buckets[buckets.length - 1].start + bucketSeconds : until, from + 1);
  const xOf = (t) => plot.x + plot.w * (t - from) / (to - from);
  const barWidth = Math.max(1, plot.w * bucketSeconds / (to - from));
  for (const bucket of buckets) {
    const x = xOf(bucket.start), w = Math.max(1, barWidth - (barWidth > 3 ? 1 : 0));
    if (bucket.coverage === null) {
      ctx.fillStyle = GAP;
      ctx.fillRect(x, plot.y, w, plot.h);
    } else {
      ctx.fillStyle = `rgba(79, 163, 255, ${0.15 + 0.85 * bucket.coverage})`;
      ctx.fillRect(x, plot.y + plot.h + 2, w, COVERAGE_STRIP);
    }
    let y = plot.y + plot.h;
    for (const label of Object.keys(bucket.shares).sort(labelOrder)) {
      const h = plot.h * bucket.shares[label];
      ctx.fillStyle = colour(label);
      ctx.fillRect(x, y - h, w, h);
      y -= h;
    }
  }
  // valence: a step across each bucket that has faces (broken where none has), outlined so it reads on any bar
  const path = new Path2D();
  let drawing = false;
  for (const bucket of buckets) {
    if (bucket.valence === null) { drawing = false; continue; }
    const x = xOf(bucket.start), y = plot.y + plot.h * (1 - (bucket.valence + 1) / 2);
    if (drawing) path.lineTo(x, y); else path.moveTo(x, y);
    path.lineTo(x + barWidth, y);
    drawing = true;
  }
  ctx.lineJoin = "round";
  ctx.strokeStyle = "rgba(0, 0, 0, 0.7)";
  ctx.lineWidth = 4;
  ctx.stroke(path);
  ctx.strokeStyle = VALENCE;
  ctx.lineWidth = 2;
  ctx.stroke(path);
  ctx.setLineDash([4, 3]);
  ctx.lineWidth = 1;
  ctx.strokeStyle = MARKER;
  ctx.fillStyle = MARKER;
  markers.forEach((marker, i) => {
    const x = Math.round(xOf(marker.t)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(x, plot.y);
    ctx.lineTo(x, plot.y + plot.h);
    ctx.stroke();
    ctx.textAlign = x > plot.x + plot.w - 80 ? "right" : "left";
    ctx.fillText(marker.label, x + (ctx.textAlign === "left" ? 3 : -3), plot.y + 7 + (i % 3) * (FONT_PX + 3));
  });
  ctx.setLineDash([]);
  ctx.textAlign = "left";
  drawAxes(ctx, plot, from, to);
  // where the plot is (CSS pixels) and the times at its edges: for anyone reading the chart back, like the tests
  canvas.dataset.plot = [plot.x, plot.y, plot.w, plot.h].join(",");
  canvas.dataset.from = String(from);
  canvas.dataset.to = String(to);
  canvas.dataset.markers = String(markers.length);
  canvas.dataset.markerIds = markers.map((m) => m.id).join(",");
  canvas.dataset.buckets = String(buckets.length);
}

function cell(row, text, value) {
  const td = document.createElement("td");
  td.textContent = text;
  if (value !== undefined) td.dataset.value = value === null ? "" : String(value);
  row.append(td);
}

function showCamera(name, buckets, markers, summary) {
  const figure = el("camera-template").content.firstElementChild.cloneNode(true);
  figure.dataset.camera = name;
  figure.querySelector(".name").textContent = name;
  const mine = markers.filter((m) => m.camera === null || m.camera === name);
  const covered = buckets.filter((b) => b.coverage !== null);
  const faceSeconds = buckets.reduce((sum, b) => sum + Object.values(b.face_seconds).reduce((a, s) => a + s, 0), 0);
  figure.querySelector(".facts").textContent =
    `${Math.round(faceSeconds)} face-seconds · ${covered.length} of ${buckets.length} buckets with frames · ` +
    `${mine.length} marker${mine.length === 1 ? "" : "s"}`;
  const body = figure.querySelector(".buckets tbody");
  for (const bucket of buckets) {
    const row = document.createElement("tr");
    row.dataset.start = String(bucket.start);
    row.dataset.shares = JSON.stringify(bucket.shares);
    const dominant = dominantOf(bucket.shares);
    cell(row, clock(bucket.start, summary.until - summary.since > 86400), bucket.start);
    cell(row, String(bucket.faces), bucket.faces);
    cell(row, dominant || "–", dominant);
    cell(row, dominant ? percent(bucket.shares[dominant]) : "–", dominant ? bucket.shares[dominant] : null);
    cell(row, signed(bucket.valence), bucket.valence);
    cell(row, bucket.coverage === null ? "no frames" : percent(bucket.coverage), bucket.coverage);
    body.append(row);
  }
  el("charts").append(figure);
  drawCamera(figure.querySelector("canvas"), buckets, mine, summary.since, summary.until, summary.bucket_seconds);
}

function showSummary(summary) {
  for (const figure of el("charts").querySelectorAll(".history-camera")) figure.remove();
  const names = Object.keys(summary.cameras).sort();
  for (const name of names) {
    cameraNames.add(name);
    showCamera(name, summary.cameras[name], summary.markers, summary);
  }
  el("no-history").hidden = names.length > 0;
  const select = el("camera-filter");
  for (const name of [...cameraNames].sort()) {
    if (![...select.options].some((o) => o.value === name)) select.append(new Option(name, name));
  }
  select.value = view.camera;
  el("range-text").textContent = `${moment(summary.since)} – ${moment(summary.until)}, ` +
    `${summary.bucket_seconds / 60} min buckets`;
  el("charts").dataset.since = String(summary.since);
  el("charts").dataset.until = String(summary.until);
  el("charts").dataset.bucket = String(summary.bucket_seconds);
}

// ------------------------------------------------------------ tracks
function addTracks(tracks) {
  const body = el("tracks").tBodies[0];
  for (const track of tracks) {
    const row = document.createElement("tr");
    row.dataset.id = String(track.id);
    row.tabIndex = 0;
    cell(row, track.camera, track.camera);
    cell(row, moment(track.first_seen), track.first_seen);
    cell(row, duration(track.duration), track.duration);
    cell(row, track.dominant || "–", track.dominant);
    cell(row, track.end_reason || "open", track.end_reason);
    if (track.dominant) row.cells[3].style.color = colour(track.dominant);
    row.addEventListener("click", () => openTrack(track.id));
    row.addEventListener("keydown", (e) => { if (e.key === "Enter") openTrack(track.id); });
    body.append(row);
  }
}

async function loadTracks(more) {
  const extra = {limit: String(TRACKS_PAGE)};
  if (more && nextBefore !== null) extra.before = String(nextBefore);
  const page = await getJson(`/api/history/tracks?${windowQuery(extra)}`);
  if (!more) el("tracks").tBodies[0].replaceChildren();
  addTracks(page.tracks);
  nextBefore = page.next_before;
  el("more-tracks").hidden = nextBefore === null;
  el("no-tracks").hidden = el("tracks").tBodies[0].rows.length > 0;
}

function drawTimeline(canvas, timeline) {
  const {ctx, width, height} = sizeCanvas(canvas);
  const track = timeline.track;
  const labels = [...new Set(timeline.samples.map((s) => s.emotion))].sort(labelOrder);
  const top = drawLegend(ctx, labels, width - RIGHT, ["valence", "event"]) + 4;
  const plot = {x: LEFT, y: top, w: width - LEFT - RIGHT, h: Math.max(20, height - top - BOTTOM)};
  const from = track.first_seen, to = Math.max(track.last_seen || from, from + 1);
  const xOf = (t) => plot.x + plot.w * (t - from) / (to - from);
  const step = timeline.samples.length > 1 ? plot.w / timeline.samples.length : 4;
  for (const sample of timeline.samples) {
    const h = plot.h * (sample.confidence || 0);
    ctx.fillStyle = colour(sample.emotion);
    ctx.fillRect(xOf(sample.t), plot.y + plot.h - h, Math.max(1, Math.min(step, 6)), h);
  }
  ctx.strokeStyle = VALENCE;
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  timeline.samples.forEach((sample, i) => {
    const y = plot.y + plot.h * (1 - ((sample.valence ?? 0) + 1) / 2);
    if (i) ctx.lineTo(xOf(sample.t), y); else ctx.moveTo(xOf(sample.t), y);
  });
  ctx.stroke();
  ctx.strokeStyle = MARKER;
  ctx.setLineDash([2, 3]);
  for (const event of timeline.events) {
    const x = Math.round(xOf(event.t)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(x, plot.y);
    ctx.lineTo(x, plot.y + plot.h);
    ctx.stroke();
  }
  ctx.setLineDash([]);
  drawAxes(ctx, plot, from, to);
}

async function openTrack(id) {
  const panel = el("timeline");
  panel.dataset.state = "loading";
  try {
    const timeline = await getJson(`/api/history/tracks/${encodeURIComponent(id)}`);
    const track = timeline.track;
    for (const row of el("tracks").tBodies[0].rows) row.classList.toggle("chosen", row.dataset.id === String(id));
    el("timeline-title").textContent = `${track.camera} #${track.track_id} (${moment(track.first_seen)})`;
    const facts = el("timeline-facts");
    facts.replaceChildren();
    for (const [name, text, value] of [
      ["duration", duration(track.duration), track.duration], ["dominant", track.dominant || "–", track.dominant],
      ["mean valence", signed(track.mean_valence), track.mean_valence], ["coverage", percent(track.coverage),
        track.coverage], ["samples", String(timeline.samples.length), timeline.samples.length],
      ["end", track.end_reason || "open", track.end_reason], ["model", track.model || "–", track.model]]) {
      const dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = name;
      dd.textContent = text;
      dd.dataset.fact = name;
      dd.dataset.value = value === null || value === undefined ? "" : String(value);
      facts.append(dt, dd);
    }
    const list = el("timeline-events");
    list.replaceChildren();
    for (const event of timeline.events) {
      const li = document.createElement("li");
      li.dataset.kind = event.kind;
      li.dataset.t = String(event.t);
      const what = event.previous ? `${event.previous} → ${event.emotion}` : event.emotion || "";
      const why = event.reason ? ` (${event.reason})` : "";
      li.textContent = `${clock(event.t, false, true)} ${event.kind} ${what}${why}`;
      list.append(li);
    }
    panel.hidden = false;
    panel.dataset.track = String(track.id);
    drawTimeline(el("timeline-chart"), timeline);
    panel.dataset.state = "shown";
  } catch (e) {
    showError(e);
    panel.dataset.state = "error";
  }
}

// ------------------------------------------------------------ loading
function showError(e) {
  el("history-error").textContent = e.message;
  el("history-error").hidden = false;
}

async function load() {
  for (const button of document.querySelectorAll("[data-range]")) {
    button.classList.toggle("chosen", button.dataset.range === view.range);
  }
  el("custom").hidden = view.range !== "custom";
  if (view.range === "custom") {
    el("since-input").value = localInput(view.since);
    el("until-input").value = localInput(view.until);
    el("bucket-input").value = String(view.bucket);
  }
  writeHash();
  el("history-error").hidden = true;
  try {
    const summary = await getJson(`/api/history/summary?${windowQuery({bucket: String(view.bucket)})}`);
    showSummary(summary);
    await loadTracks(false);
  } catch (e) {
    showError(e);
  } finally {
    loads += 1;
    document.body.dataset.loads = String(loads);
  }
}

for (const button of document.querySelectorAll("[data-range]")) {
  button.addEventListener("click", () => {
    const range = button.dataset.range;
    if (range === "custom") {
      view.range = "custom";  // keeps the current window, now editable
      view.bucket = Number(el("bucket-input").value) || view.bucket;
    } else {
      const until = Date.now() / 1000;
      view = {...view, range, since: until - RANGES[range].span, until, bucket: RANGES[range].bucket};
    }
    load();
  });
}
el("custom").addEventListener("submit", (e) => {
  e.preventDefault();
  const since = new Date(el("since-input").value).getTime() / 1000;
  const until = new Date(el("until-input").value).getTime() / 1000;
  if (!(since < until)) { showError(new Error("the start must be before the end")); return; }
  view = {...view, range: "custom", since, until, bucket: Number(el("bucket-input").value)};
  load();
});
el("camera-filter").addEventListener("change", () => { view.camera = el("camera-filter").value; load(); });
el("more-tracks").addEventListener("click", () => loadTracks(true).catch(showError));
window.addEventListener("hashchange", () => { readHash(); load(); });
readHash();
load();
