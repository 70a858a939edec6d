// The poking page: pick or upload an image, drag up to max_pokes arrows, sample videos, chain pokes.
// Plain browser JavaScript against the JSON API documented at /docs.
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  info: null,
  image: null,   // {id, name, width, height, url} as returned by the API
  picture: null, // the loaded HTMLImageElement
  pokes: [],     // [{x, y, dx, dy}] in image pixels
  drag: null,    // {x, y, tx, ty} while dragging
  chain: [],     // labels of the images this one came from
  busy: false,
};

const CANVAS_CSS = 384;

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const isJson = (response.headers.get("content-type") || "").includes("application/json");
  const body = isJson ? await response.json() : null;
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : response.statusText;
    const error = new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
    error.status = response.status;
    error.retryAfter = response.headers.get("Retry-After");
    throw error;
  }
  return body;
}

function setStatus(text, kind = "") {
  const el = $("status");
  el.textContent = text;
  el.className = `status ${kind}`;
}

function color(index) {
  const colors = state.info.poke_colors;
  return colors[index % colors.length];
}

// --- canvas -------------------------------------------------------------------------------------------

const canvas = $("canvas");
const ctx = canvas.getContext("2d");

function sizeCanvas() {
  const ratio = window.devicePixelRatio || 1;
  canvas.style.width = canvas.style.height = `${CANVAS_CSS}px`;
  canvas.width = canvas.height = Math.round(CANVAS_CSS * ratio);
}

function toCanvas(x, y) {
  const scale = canvas.width / state.image.width;
  return [x * scale, y * scale];
}

function eventToImage(event) {
  const rect = canvas.getBoundingClientRect();
  const clamp = (v, hi) => Math.min(Math.max(v, 0), hi - 1e-3);
  return [
    clamp(((event.clientX - rect.left) / rect.width) * state.image.width, state.image.width),
    clamp(((event.clientY - rect.top) / rect.height) * state.image.height, state.image.height),
  ];
}

function drawArrow(x0, y0, x1, y1, fill, alpha = 1) {
  const unit = canvas.width / CANVAS_CSS;
  const [ax, ay] = toCanvas(x0, y0);
  const [bx, by] = toCanvas(x1, y1);
  const length = Math.hypot(bx - ax, by - ay);
  ctx.save();
  ctx.globalAlpha = alpha;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  for (const [stroke, width] of [["rgba(0,0,0,0.65)", 5.5 * unit], [fill, 3 * unit]]) {
    ctx.strokeStyle = stroke;
    ctx.fillStyle = stroke;
    ctx.lineWidth = width;
    if (length > 1) {
      const head = Math.min(14 * unit, 0.45 * length);
      const angle = Math.atan2(by - ay, bx - ax);
      ctx.beginPath();
      ctx.moveTo(ax, ay);
      ctx.lineTo(bx, by);
      for (const side of [-1, 1]) {
        ctx.moveTo(bx, by);
        ctx.lineTo(bx - head * Math.cos(angle + side * 0.45), by - head * Math.sin(angle + side * 0.45));
      }
      ctx.stroke();
    }
    ctx.beginPath();
    ctx.arc(bx, by, width / 2 + 3.5 * unit, 0, 2 * Math.PI);
    ctx.fill();
    ctx.beginPath();
    ctx.arc(ax, ay, width / 2 + 0.5 * unit, 0, 2 * Math.PI);
    ctx.fill();
  }
  ctx.restore();
}

function draw() {
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!state.picture) return;
  ctx.imageSmoothingEnabled = state.image.width >= canvas.width;
  ctx.drawImage(state.picture, 0, 0, canvas.width, canvas.height);
  state.pokes.forEach((p, i) => drawArrow(p.x, p.y, p.x + p.dx, p.y + p.dy, color(i)));
  if (state.drag) {
    const d = state.drag;
    drawArrow(d.x, d.y, d.tx, d.ty, color(state.pokes.length), 0.8);
  }
}

canvas.addEventListener("pointerdown", (event) => {
  if (!state.image || state.busy) return;
  if (state.pokes.length >= state.info.max_pokes) {
    setStatus(`The model takes at most ${state.info.max_pokes} pokes; remove one first.`, "warn");
    return;
  }
  const [x, y] = eventToImage(event);
  state.drag = { x, y, tx: x, ty: y };
  canvas.setPointerCapture(event.pointerId);
  draw();
});

canvas.addEventListener("pointermove", (event) => {
  if (!state.drag) return;
  [state.drag.tx, state.drag.ty] = eventToImage(event);
  draw();
});

function endDrag(event, keep) {
  if (!state.drag) return;
  const d = state.drag;
  state.drag = null;
  if (canvas.hasPointerCapture(event.pointerId)) canvas.releasePointerCapture(event.pointerId);
  const minLength = (3 / CANVAS_CSS) * state.image.width; // a click is not a poke
  if (keep && Math.hypot(d.tx - d.x, d.ty - d.y) >= minLength) {
    state.pokes.push({ x: d.x, y: d.y, dx: d.tx - d.x, dy: d.ty - d.y });
    setStatus("");
  }
  renderPokes();
  draw();
}

canvas.addEventListener("pointerup", (event) => endDrag(event, true));
canvas.addEventListener("pointercancel", (event) => endDrag(event, false));

// --- side panels --------------------------------------------------------------------------------------

function renderPokes() {
  const list = $("pokes");
  list.replaceChildren();
  state.pokes.forEach((p, i) => {
    const item = document.createElement("li");
    item.className = "poke-item";
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = color(i);
    const text = document.createElement("span");
    text.className = "poke-text";
    text.textContent = `(${p.x.toFixed(1)}, ${p.y.toFixed(1)}) → (${(p.x + p.dx).toFixed(1)}, ${(p.y + p.dy).toFixed(1)})`;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "icon remove";
    remove.title = `Remove poke ${i + 1}`;
    remove.setAttribute("aria-label", `Remove poke ${i + 1}`);
    remove.textContent = "×";
    remove.addEventListener("click", () => {
      state.pokes.splice(i, 1);
      renderPokes();
      draw();
    });
    item.append(swatch, text, remove);
    list.append(item);
  });
  const left = state.info.max_pokes - state.pokes.length;
  $("poke-hint").textContent = state.pokes.length
    ? `${state.pokes.length} of ${state.info.max_pokes} pokes${left ? "; drag to add another" : ""}.`
    : "Drag from a point on the object to where it should move, or sample without a poke.";
  $("sample").disabled = state.busy || !state.image;
  $("clear").disabled = state.busy || state.pokes.length === 0;
}

function renderChain() {
  const el = $("chain");
  el.replaceChildren();
  state.chain.forEach((label, i) => {
    if (i) {
      const sep = document.createElement("span");
      sep.className = "sep";
      sep.textContent = "›";
      el.append(sep);
    }
    const chip = document.createElement("span");
    chip.className = i === state.chain.length - 1 ? "crumb current" : "crumb";
    chip.textContent = label;
    el.append(chip);
  });
}

function loadPicture(url) {
  return new Promise((resolve, reject) => {
    const picture = new Image();
    picture.onload = () => resolve(picture);
    picture.onerror = () => reject(new Error(`could not load ${url}`));
    picture.src = url;
  });
}

async function selectImage(image, chain) {
  state.picture = await loadPicture(image.url);
  state.image = image;
  state.pokes = [];
  state.chain = chain;
  $("canvas-empty").hidden = true;
  for (const thumb of document.querySelectorAll(".thumb")) {
    thumb.classList.toggle("selected", thumb.dataset.id === image.id);
  }
  renderChain();
  renderPokes();
  draw();
}

function renderFrames(frames) {
  const container = $("frames");
  container.replaceChildren();
  for (const frame of frames) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "thumb";
    button.dataset.id = frame.id;
    button.title = frame.name;
    const img = document.createElement("img");
    img.src = frame.url;
    img.alt = frame.name;
    button.append(img);
    button.addEventListener("click", () => selectImage(frame, [frame.name]));
    container.append(button);
  }
  if (!frames.length) container.textContent = "No test frames; upload an image.";
}

$("upload").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  event.target.value = "";
  if (!file) return;
  if (file.size > state.info.max_upload_bytes) {
    setStatus(`${file.name} is ${(file.size / 1048576).toFixed(1)} MB; the limit is ` +
      `${(state.info.max_upload_bytes / 1048576).toFixed(0)} MB.`, "error");
    return;
  }
  setStatus(`Uploading ${file.name}…`);
  try {
    const image = await api("/api/images", {
      method: "POST",
      headers: { "Content-Type": file.type || "application/octet-stream" },
      body: file,
    });
    await selectImage(image, [file.name]);
    setStatus(image.crop ? `${file.name}: ${image.crop}, shown here.` : "");
  } catch (error) {
    setStatus(`Upload refused: ${error.message}`, "error");
  }
});

// --- sampling and results -----------------------------------------------------------------------------

function setBusy(busy) {
  state.busy = busy;
  document.body.classList.toggle("busy", busy);
  renderPokes();
}

function videoCard(video, result) {
  const card = document.createElement("figure");
  card.className = "video-card";
  const img = document.createElement("img");
  img.className = "video";
  img.src = video.gif_url;
  img.alt = `Sample ${video.sample + 1}`;
  img.width = img.height = state.info.display_size;
  const caption = document.createElement("figcaption");
  const label = document.createElement("span");
  label.className = "label";
  label.textContent = `Sample ${video.sample + 1}`;
  const links = document.createElement("span");
  links.className = "links";
  for (const [text, url, ext] of [["GIF", video.gif_url, "gif"], ["MP4", video.mp4_url, "mp4"]]) {
    const a = document.createElement("a");
    a.href = url;
    a.download = `ipoke-seed${result.seed}-sample${video.sample + 1}.${ext}`;
    a.textContent = text;
    a.title = `Download as ${text}`;
    links.append(a);
  }
  const next = document.createElement("button");
  next.type = "button";
  next.className = "secondary small continue";
  next.textContent = "Continue \u25b8";
  next.title = "Poke again, starting from this video's last frame";
  next.setAttribute("aria-label", "Continue from last frame");
  next.addEventListener("click", async () => {
    try {
      const image = await api(`/api/videos/${video.id}/continue`, { method: "POST" });
      await selectImage(image, [...state.chain, `sample ${video.sample + 1}`]);
      setStatus("Continuing from the last frame: drag new pokes.");
    } catch (error) {
      setStatus(`Could not continue: ${error.message}`, "error");
    }
  });
  caption.append(label, links, next);
  card.append(img, caption);
  return card;
}

async function requestSamples() {
  const n = Number($("n-samples").value);
  const seed = Number($("seed").value);
  const temperature = Number($("temperature").value);
  const body = { image_id: state.image.id, pokes: state.pokes, n_samples: n, seed, temperature };
  setBusy(true);
  setStatus(`Sampling ${n} video${n === 1 ? "" : "s"}…`, "working");
  try {
    const result = await api("/api/samples", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const container = $("videos");
    container.replaceChildren(...result.videos.map((v) => videoCard(v, result)));
    $("results-meta").textContent =
      `${result.n_samples} sample${result.n_samples === 1 ? "" : "s"} · seed ${result.seed} · ` +
      `${state.pokes.length || "no"} poke${state.pokes.length === 1 ? "" : "s"} · ` +
      `${result.elapsed_s.toFixed(2)} s`;
    setStatus("");
  } catch (error) {
    const retry = error.status === 503 && error.retryAfter ? ` Try again in ${error.retryAfter} s.` : "";
    setStatus(`${error.message}${retry}`, "error");
  } finally {
    setBusy(false);
  }
}

$("sample").addEventListener("click", requestSamples);
$("clear").addEventListener("click", () => {
  state.pokes = [];
  renderPokes();
  draw();
});
$("dice").addEventListener("click", () => {
  $("seed").value = Math.floor(Math.random() * 100000);
});

async function init() {
  sizeCanvas();
  try {
    state.info = await api("/api/info");
    const nSamples = $("n-samples");
    nSamples.max = state.info.max_samples;
    nSamples.value = Math.min(4, state.info.max_samples);
    $("model-info").textContent =
      `${state.info.size}×${state.info.size} px · ${state.info.n_frames} frames · up to ${state.info.max_pokes} pokes`;
    const frames = await api("/api/frames");
    renderFrames(frames);
    renderPokes();
    if (frames.length) await selectImage(frames[0], [frames[0].name]);
  } catch (error) {
    setStatus(`Could not reach the server: ${error.message}`, "error");
  }
}

init();
