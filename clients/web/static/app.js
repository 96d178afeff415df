// The emotiond console: one WebSocket brings results, change events, status, messages and the annotated
// JPEG frames of every camera; /api/cameras lists the cameras; /api/analyze takes a photo. No dependencies.
"use strict";

const CHART_MINUTES = 5;
const BUCKET_SECONDS = 5;
const MAX_EVENTS = 200;
const FPS = 10;
const tiles = new Map();          // camera -> {root, video, status, fps, message, chart, buckets, frames, seq}
let colors = {};                  // emotion -> CSS colour, from the server's hello (the overlay's colours)
let socket = null;
let retryDelay = 500;

function el(id) { return document.getElementById(id); }

function tile(camera) {
  let t = tiles.get(camera);
  if (t) return t;
  const root = el("tile-template").content.firstElementChild.cloneNode(true);
  root.dataset.camera = camera;
  root.dataset.frames = "0";
  root.querySelector(".name").textContent = camera;
  root.addEventListener("click", () => root.classList.toggle("enlarged"));
  resized.observe(root);
  t = {root, video: root.querySelector(".video"), status: root.querySelector(".status"),
       fps: root.querySelector(".fps"), message: root.querySelector(".message"),
       chart: root.querySelector(".chart"), buckets: new Map(), frames: 0, seq: null};
  tiles.set(camera, t);
  const grid = el("grid");
  const names = [...tiles.keys()].sort();
  const next = names[names.indexOf(camera) + 1];
  grid.insertBefore(root, next ? tiles.get(next).root : null);
  el("no-cameras").hidden = true;
  loadHistory(camera);
  watchAll();
  return t;
}

function setStatus(camera, state, note) {
  const t = tile(camera);
  t.status.textContent = state;
  t.status.className = "badge status " + state;
  t.status.title = note || "";
  t.root.dataset.status = state;
}

// ------------------------------------------------------------ charts: faces per emotion per 5 s bucket
function faceEmotion(face) { return face.smoothed_emotion || face.emotion; }

function countResult(t, result) {
  const bucket = Math.floor(result.published_at / BUCKET_SECONDS);
  let counts = t.buckets.get(bucket);
  if (!counts) { counts = {}; t.buckets.set(bucket, counts); }
  for (const face of result.faces) {
    const emotion = faceEmotion(face);
    counts[emotion] = (counts[emotion] || 0) + 1;
  }
}

const CHART_AXIS = "#9aa0a6";     // axes, ticks and their labels
const CHART_TEXT = "#e8e8e8";
const CHART_FONT_PX = 11;
const CHART_LEFT = 36, CHART_RIGHT = 8, CHART_BOTTOM = 16;  // room for the y labels, and the x labels below

// The legend: a swatch and a name per emotion of the model, wrapped into rows; returns the height it took.
function drawLegend(ctx, width) {
  const row = CHART_FONT_PX + 5;
  let x = CHART_LEFT, y = 2;
  for (const [emotion, colour] of Object.entries(colors)) {
    const w = 14 + ctx.measureText(emotion).width + 10;
    if (x + w > width && x > CHART_LEFT) { x = CHART_LEFT; y += row; }
    ctx.fillStyle = colour;
    ctx.fillRect(x, y + 2, 10, 10);
    ctx.fillStyle = CHART_TEXT;
    ctx.fillText(emotion, x + 14, y + 7);
    x += w;
  }
  return y + row + 2;
}

// Axes: the share of faces (0-100%) up, minutes ago along.
function drawAxes(ctx, plot) {
  ctx.strokeStyle = CHART_AXIS;
  ctx.fillStyle = CHART_AXIS;
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(plot.x - 0.5, plot.y);
  ctx.lineTo(plot.x - 0.5, plot.y + plot.h + 0.5);
  ctx.lineTo(plot.x + plot.w, plot.y + plot.h + 0.5);
  ctx.stroke();
  ctx.textAlign = "right";
  for (const share of [0, 50, 100]) {
    const y = plot.y + plot.h * (1 - share / 100);
    ctx.fillRect(plot.x - 4, Math.round(y), 3, 1);
    ctx.fillText(`${share}%`, plot.x - 6, Math.min(plot.y + plot.h - 4, Math.max(plot.y + 4, y)));
  }
  ctx.textAlign = "center";
  for (let minutes = CHART_MINUTES; minutes >= 0; minutes--) {
    const x = plot.x + plot.w * (1 - minutes / CHART_MINUTES);
    ctx.fillRect(Math.round(x), plot.y + plot.h + 1, 1, 3);
    ctx.textAlign = minutes === 0 ? "right" : minutes === CHART_MINUTES ? "left" : "center";
    ctx.fillText(minutes === 0 ? "now" : `-${minutes} min`, x, plot.y + plot.h + 10);
  }
  ctx.textAlign = "left";
}

// Stacked bars of each emotion's share of the faces seen per bucket, with axes and a legend, drawn at the
// canvas's shown size in device pixels so the text stays sharp.
function drawChart(t) {
  const canvas = t.chart, ctx = canvas.getContext("2d");
  const scale = window.devicePixelRatio || 1;
  const cssWidth = canvas.clientWidth || canvas.width, cssHeight = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(cssWidth * scale) || canvas.height !== Math.round(cssHeight * scale)) {
    canvas.width = Math.round(cssWidth * scale);
    canvas.height = Math.round(cssHeight * scale);
  }
  ctx.setTransform(scale, 0, 0, scale, 0, 0);
  ctx.clearRect(0, 0, cssWidth, cssHeight);
  ctx.font = `${CHART_FONT_PX}px system-ui, sans-serif`;
  ctx.textBaseline = "middle";
  const count = CHART_MINUTES * 60 / BUCKET_SECONDS;
  const last = Math.floor(Date.now() / 1000 / BUCKET_SECONDS);
  for (const key of t.buckets.keys()) if (key <= last - count) t.buckets.delete(key);
  const top = drawLegend(ctx, cssWidth - CHART_RIGHT) + 4;
  const plot = {x: CHART_LEFT, y: top, w: cssWidth - CHART_LEFT - CHART_RIGHT,
                h: Math.max(10, cssHeight - top - CHART_BOTTOM)};
  const width = plot.w / count;
  for (let i = 0; i < count; i++) {
    const counts = t.buckets.get(last - count + 1 + i);
    if (!counts) continue;
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    let y = plot.y + plot.h;
    for (const [emotion, n] of Object.entries(counts).sort()) {
      const h = plot.h * n / total;
      ctx.fillStyle = colors[emotion] || "#888";
      ctx.fillRect(plot.x + i * width, y - h, Math.max(1, width - 1), h);
      y -= h;
    }
  }
  drawAxes(ctx, plot);
}

async function loadHistory(camera) {
  const after = Date.now() / 1000 - CHART_MINUTES * 60;
  try {
    const reply = await fetch(`/api/events?camera=${encodeURIComponent(camera)}&topic=result&limit=2000&after=${after}`);
    if (!reply.ok) return;
    const t = tiles.get(camera);
    for (const item of (await reply.json()).events) countResult(t, item.payload);
  } catch (e) { /* the live socket fills the chart anyway */ }
}

// ------------------------------------------------------------ events list
function addEvent(event, live) {
  const list = el("events");
  const li = document.createElement("li");
  li.className = `event ${event.event} ${live ? "live" : "history"}`;
  li.dataset.camera = event.camera;
  const kind = document.createElement("span");
  kind.className = "kind";
  kind.textContent = event.event;
  const time = new Date(event.at * 1000).toLocaleTimeString();
  const what = event.previous ? `${event.previous} → ${event.emotion}` : event.emotion;
  const why = event.reason ? ` (${event.reason})` : "";
  li.append(kind, `${time} ${event.camera} #${event.track_id} ${what}${why}`);
  if (live) list.prepend(li); else list.append(li);
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
}

async function loadEvents() {
  try {
    const reply = await fetch(`/api/events?topic=event&limit=${MAX_EVENTS}`);
    if (reply.ok) for (const item of (await reply.json()).events) addEvent(item.payload, false);
  } catch (e) { /* the live socket brings new ones */ }
}

// ------------------------------------------------------------ the socket
// Frames come at the height each tile shows them at (device pixels): the console encodes less, and the browser
// decodes less and does not scale them again.
function tileHeight(t) {
  const shown = t.video.parentElement.clientHeight;
  return shown > 0 ? Math.min(4096, Math.max(16, Math.round(shown * (window.devicePixelRatio || 1)))) : undefined;
}

let sentWatch = "";
function watchAll() {
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  const heights = {};
  for (const [camera, t] of tiles) {
    const height = tileHeight(t);
    if (height) heights[camera] = height;
  }
  const request = JSON.stringify({watch: [...tiles.keys()], fps: FPS, heights});
  if (request !== sentWatch) socket.send(request);
  sentWatch = request;
}

let resizeTimer = null;
const resized = new ResizeObserver(() => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(watchAll, 300);
});

// ImageDecoder (WebCodecs) decodes straight from the message's bytes; elsewhere a Blob goes through
// createImageBitmap. Both decode off the main thread.
async function decodeJpeg(bytes) {
  if (typeof ImageDecoder === "undefined") return createImageBitmap(new Blob([bytes], {type: "image/jpeg"}));
  const decoder = new ImageDecoder({data: bytes, type: "image/jpeg"});
  try {
    const {image} = await decoder.decode();
    try { return await createImageBitmap(image); } finally { image.close(); }
  } finally {
    decoder.close();
  }
}

function showFrame(data) {
  const bytes = new Uint8Array(data);
  const length = bytes[0];
  const camera = new TextDecoder().decode(bytes.subarray(1, 1 + length));
  const t = tiles.get(camera);
  if (!t) return;
  const seq = new DataView(data, 1 + length, 8).getBigUint64(0);
  // Decoded off the main thread and handed to the canvas without a copy: far cheaper for the browser than a new
  // blob URL in an <img> ten times a second per camera.
  decodeJpeg(bytes.subarray(9 + length)).then((bitmap) => {
    if (t.seq !== null && seq <= t.seq) { bitmap.close(); return; }  // a newer frame is already shown
    t.seq = seq;
    if (t.video.width !== bitmap.width || t.video.height !== bitmap.height) {
      t.video.width = bitmap.width;
      t.video.height = bitmap.height;
    }
    t.video.getContext("bitmaprenderer").transferFromImageBitmap(bitmap);
    t.video.dataset.seq = String(seq);  // the frame's seq, to find its result in /api/events
    t.frames += 1;
    t.root.dataset.frames = String(t.frames);
  }).catch(() => { /* a frame that does not decode is skipped */ });
}

function onMessage(item) {
  const p = item.payload;
  switch (item.topic) {
    case "hello":
      colors = p.emotion_colors;
      for (const camera of p.cameras) tile(camera);
      break;
    case "result":
      countResult(tile(p.camera), p);
      break;
    case "event":
      addEvent(p, true);
      break;
    case "status":
      setStatus(p.camera, p.state, p.message);
      break;
    case "message":
      tile(p.camera).message.textContent = p.text;
      break;
    case "error":
      console.warn("console:", p.error);
      break;
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws`);
  socket.binaryType = "arraybuffer";
  socket.onopen = () => {
    retryDelay = 500;
    sentWatch = "";
    el("connection").textContent = "live";
    el("connection").className = "badge up";
    watchAll();
  };
  socket.onmessage = (message) => {
    if (typeof message.data === "string") onMessage(JSON.parse(message.data));
    else showFrame(message.data);
  };
  socket.onclose = () => {
    el("connection").textContent = "offline";
    el("connection").className = "badge down";
    if (leaving) return;
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 10000);
  };
}

// Leaving the page closes the socket at once, so the console stops sending (and encoding) this page's frames.
let leaving = false;
window.addEventListener("pagehide", () => { leaving = true; if (socket) socket.close(); });
window.addEventListener("pageshow", (e) => { if (e.persisted) { leaving = false; connect(); } });

async function refreshCameras() {
  try {
    const reply = await fetch("/api/cameras");
    if (reply.status === 401) { location.href = "/login"; return; }
    for (const camera of (await reply.json()).cameras) {
      const t = tile(camera.name);
      setStatus(camera.name, camera.status, camera.status_message);
      t.fps.textContent = `${camera.fps.toFixed(1)} fps`;
      if (camera.message) t.message.textContent = camera.message;
    }
  } catch (e) { /* offline: the badge says so */ }
}

// ------------------------------------------------------------ photo upload
async function upload(event) {
  event.preventDefault();
  const file = el("upload-file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("image", file);
  el("upload-button").disabled = true;
  el("upload-error").hidden = true;
  try {
    const reply = await fetch("/api/analyze", {method: "POST", body: form});
    const body = await reply.json();
    if (!reply.ok) throw new Error(body.error || reply.statusText);
    el("upload-image").src = body.image;
    const faces = body.result.faces.length;
    el("upload-emotion").textContent = body.emotion || "no face found";
    el("upload-faces").textContent = `${faces} face${faces === 1 ? "" : "s"}`;
    el("upload-message").textContent = body.message;
    el("upload-result").hidden = false;
  } catch (e) {
    el("upload-error").textContent = e.message;
    el("upload-error").hidden = false;
  } finally {
    el("upload-button").disabled = false;
  }
}

el("upload-form").addEventListener("submit", upload);
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape") for (const t of tiles.values()) t.root.classList.remove("enlarged");
});
refreshCameras();
loadEvents();
setInterval(refreshCameras, 3000);
setInterval(() => { for (const t of tiles.values()) drawChart(t); }, 1000);
connect();
