/* Studio.Anime demo player: browse, title, watch. No build step, no inline code
 * (the gateway's CSP allows only this origin's scripts and styles).
 *
 * Routes (hash): #/  ·  #/title/<slug>  ·  #/watch/<episodeId>
 * Sign-in: development tokens (POST /api/dev/token), or Clerk when
 * /player/config.json carries a publishable key.
 */
"use strict";

(function () {
  const SAVE_EVERY_MS = 5000;
  const TOKEN_KEY = "studio.session";
  const $ = (id) => document.getElementById(id);

  const state = {
    config: { auth: "dev", clerkPublishableKey: null },
    session: null, // {token, expiresAt, email, role} in dev mode
    clerk: null,
    user: null,
    titleOfEpisode: {}, // episodeId -> slug, to link back from the player
    watch: null, // the open player, see openWatch()
  };

  // ------------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, title, detail) {
      super(detail ? `${title}: ${detail}` : title);
      this.status = status;
      this.title = title;
      this.detail = detail;
    }
  }

  async function token() {
    if (state.config.auth === "clerk") {
      if (state.clerk && state.clerk.session) return await state.clerk.session.getToken();
      return null;
    }
    const s = state.session;
    if (!s) return null;
    if (s.expiresAt && Date.parse(s.expiresAt) < Date.now()) {
      setSession(null);
      return null;
    }
    return s.token;
  }

  async function api(path, { method = "GET", body, auth = true, keepalive = false } = {}) {
    const headers = { Accept: "application/json" };
    if (auth) {
      const t = await token();
      if (t) headers.Authorization = `Bearer ${t}`;
    }
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      keepalive,
      // Public catalog reads are briefly cacheable for CDNs; the player
      // revalidates so an editor's change shows at once.
      cache: "no-cache",
    });
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const title = (data && data.title) || `HTTP ${response.status}`;
      throw new ApiError(response.status, title, data && data.detail);
    }
    return data;
  }

  function showError(error) {
    const el = $("message");
    el.textContent = error instanceof ApiError || error instanceof Error ? error.message : String(error);
    el.hidden = false;
  }

  function clearError() {
    $("message").hidden = true;
  }

  // ------------------------------------------------------------------ sign-in

  function setSession(session) {
    state.session = session;
    if (session) localStorage.setItem(TOKEN_KEY, JSON.stringify(session));
    else localStorage.removeItem(TOKEN_KEY);
  }

  function signedIn() {
    if (state.config.auth === "clerk") return Boolean(state.clerk && state.clerk.user);
    return Boolean(state.session);
  }

  function renderAuth() {
    const inDev = state.config.auth === "dev";
    const yes = signedIn();
    $("dev-signin").hidden = !inDev || yes;
    $("clerk-signin").hidden = inDev || yes;
    $("signout").hidden = !yes;
    $("auth-user").hidden = !yes;
    if (yes && state.user) {
      $("auth-user").textContent = `${state.user.email || state.user.clerkId} (${state.user.role})`;
    } else if (yes) {
      $("auth-user").textContent = "signed in";
    }
    document.body.dataset.signedIn = yes ? "true" : "false";
  }

  async function loadMe() {
    if (!signedIn()) {
      state.user = null;
      return;
    }
    try {
      state.user = await api("/api/me");
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        setSession(null);
        state.user = null;
      } else {
        showError(e);
      }
    }
  }

  async function devSignIn(event) {
    event.preventDefault();
    clearError();
    try {
      const email = $("dev-email").value.trim();
      const role = $("dev-role").value;
      const issued = await api("/api/dev/token", { method: "POST", body: { email, role }, auth: false });
      setSession({ token: issued.token, expiresAt: issued.expiresAt, email, role });
      await loadMe();
      renderAuth();
      route();
    } catch (e) {
      showError(e);
    }
  }

  function clerkFrontendHost(key) {
    const encoded = key.split("_")[2] || "";
    const decoded = atob(encoded.replace(/-/g, "+").replace(/_/g, "/"));
    return decoded.replace(/\$$/, "");
  }

  function loadClerk(key) {
    // Clerk's JS is loaded in this mode only, from the instance's Frontend API
    // (the gateway's CSP allows exactly that host).
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = `https://${clerkFrontendHost(key)}/npm/@clerk/clerk-js@5/dist/clerk.browser.js`;
      script.async = true;
      script.crossOrigin = "anonymous";
      script.dataset.clerkPublishableKey = key;
      script.addEventListener("load", async () => {
        try {
          await window.Clerk.load();
          resolve(window.Clerk);
        } catch (e) {
          reject(e);
        }
      });
      script.addEventListener("error", () => reject(new Error("Clerk could not be loaded")));
      document.head.appendChild(script);
    });
  }

  async function signOut() {
    await closeWatch();
    if (state.config.auth === "clerk" && state.clerk) await state.clerk.signOut();
    setSession(null);
    state.user = null;
    renderAuth();
    route();
  }

  // ------------------------------------------------------------------ views

  function show(view) {
    for (const id of ["view-browse", "view-title", "view-watch"]) $(id).hidden = id !== view;
  }

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === "dataset") Object.assign(node.dataset, v);
      else if (k in node) node[k] = v;
      else node.setAttribute(k, v);
    }
    for (const child of children) if (child != null) node.append(child);
    return node;
  }

  function posterOf(title, large) {
    const box = el("div", { className: large ? "poster large" : "poster" });
    if (title.posterUrl) box.style.backgroundImage = `url("${encodeURI(title.posterUrl)}")`;
    else box.textContent = shownName(title).slice(0, 1).toUpperCase();
    return box;
  }

  // The catalog picks the name for the browser's Accept-Language (English for
  // en, the native name for ja, else romaji); the others are shown alongside.
  function shownName(title) {
    return title.displayName || title.name;
  }

  function otherNames(title) {
    const shown = shownName(title);
    return [...new Set((title.names || []).map((n) => n.name).filter((n) => n !== shown))];
  }

  function fmtTime(sec) {
    if (!Number.isFinite(sec) || sec < 0) sec = 0;
    const s = Math.floor(sec % 60);
    const m = Math.floor(sec / 60) % 60;
    const h = Math.floor(sec / 3600);
    const mm = h ? String(m).padStart(2, "0") : String(m);
    return `${h ? h + ":" : ""}${mm}:${String(s).padStart(2, "0")}`;
  }

  // --- browse

  let genresLoaded = false;
  let searchTimer = null;

  async function loadGenres() {
    if (genresLoaded) return;
    const page = await api("/api/titles?pageSize=100", { auth: false });
    const genres = new Set();
    for (const t of page.items) for (const g of t.genres) genres.add(g);
    const select = $("genre");
    for (const g of [...genres].sort()) select.append(el("option", { value: g, textContent: g }));
    genresLoaded = true;
  }

  async function renderBrowse() {
    show("view-browse");
    await loadGenres();
    const params = new URLSearchParams({ pageSize: "60" });
    const q = $("search").value.trim();
    const genre = $("genre").value;
    if (q) params.set("q", q);
    if (genre) params.append("genre", genre);
    const page = await api(`/api/titles?${params}`, { auth: false });
    const grid = $("title-grid");
    grid.replaceChildren(
      ...page.items.map((t) =>
        el(
          "li",
          { className: "card", dataset: { slug: t.slug } },
          el(
            "a",
            { href: `#/title/${encodeURIComponent(t.slug)}` },
            posterOf(t, false),
            el(
              "div",
              { className: "info" },
              el("div", { className: "name", textContent: shownName(t) }),
              otherNames(t).length
                ? el("div", { className: "aka muted", textContent: otherNames(t).slice(0, 2).join(" · ") })
                : null,
              el("div", {
                className: "meta",
                textContent: [t.year, t.type, t.genres.join(", ")].filter(Boolean).join(" · "),
              }),
            ),
          ),
        ),
      ),
    );
    $("browse-empty").hidden = page.items.length > 0;
    await renderContinue();
  }

  async function renderContinue() {
    const box = $("continue");
    if (!signedIn()) {
      box.hidden = true;
      return;
    }
    try {
      const data = await api("/api/me/continue-watching?limit=10");
      const list = $("continue-list");
      list.replaceChildren(
        ...data.items.map((item) => {
          if (item.slug) state.titleOfEpisode[item.episodeId] = item.slug;
          const label = `${item.name || item.slug || "Title"} · S${item.seasonNumber}E${item.episodeNumber}` +
            (item.upNext ? " (next)" : ` · ${fmtTime(item.positionSec)}`);
          return el("li", {}, el("a", { href: `#/watch/${item.episodeId}`, textContent: label }));
        }),
      );
      box.hidden = data.items.length === 0;
    } catch (_) {
      box.hidden = true;
    }
  }

  // --- title

  async function isFavorite(titleId) {
    const page = await api("/api/users/me/watchlist?pageSize=100");
    return page.items.some((item) => item.titleId === titleId);
  }

  function renderFavorite(on) {
    const button = $("favorite");
    button.setAttribute("aria-pressed", on ? "true" : "false");
    button.textContent = on ? "★ Favorite" : "☆ Favorite";
  }

  async function renderTitle(slug) {
    show("view-title");
    const title = await api(`/api/titles/${encodeURIComponent(slug)}`, { auth: false });
    $("title-poster").replaceWith(Object.assign(posterOf(title, true), { id: "title-poster" }));
    $("title-name").textContent = shownName(title);
    $("title-aka").textContent = otherNames(title).join(" · ");
    $("title-aka").hidden = otherNames(title).length === 0;
    $("title-meta").textContent = [title.year, title.type, title.genres.join(", "), title.ratingAvg && `★ ${title.ratingAvg}`]
      .filter(Boolean)
      .join(" · ");
    $("title-synopsis").textContent = title.synopsis || "";
    const seasons = $("seasons");
    seasons.replaceChildren(
      ...title.seasons.map((season) =>
        el(
          "div",
          { className: "season" },
          el("h2", { textContent: season.name || `Season ${season.number}` }),
          season.episodes.length
            ? el(
                "ul",
                { className: "episodes" },
                ...season.episodes.map((e) => {
                  state.titleOfEpisode[e.id] = title.slug;
                  const stateText = e.playable
                    ? e.durationSec ? fmtTime(e.durationSec) : "playable"
                    : e.transcodeState;
                  return el(
                    "li",
                    { className: "episode", dataset: { episodeId: e.id, number: String(e.number) } },
                    el("span", { textContent: `${e.number}. ${e.name}` }),
                    el("span", { className: "state", textContent: stateText }),
                    e.playable
                      ? el("a", { href: `#/watch/${e.id}`, className: "play", textContent: "▶ Play" })
                      : null,
                  );
                }),
              )
            : el("p", { className: "muted", textContent: "No episodes yet." }),
        ),
      ),
    );
    if (!title.seasons.length) seasons.append(el("p", { className: "muted", textContent: "No seasons yet." }));

    const button = $("favorite");
    button.onclick = null;
    if (!signedIn()) {
      button.disabled = true;
      button.textContent = "Sign in to favorite";
      return;
    }
    button.disabled = false;
    renderFavorite(await isFavorite(title.id));
    button.onclick = async () => {
      const wanted = button.getAttribute("aria-pressed") !== "true";
      button.disabled = true;
      try {
        const result = await api("/api/favorites", { method: "POST", body: { titleId: title.id, favorite: wanted } });
        renderFavorite(result.favorite);
      } catch (e) {
        showError(e);
      } finally {
        button.disabled = false;
      }
    };
  }

  // --- watch

  function parseVttTime(text) {
    const parts = text.trim().split(":").map(Number);
    while (parts.length < 3) parts.unshift(0);
    return parts[0] * 3600 + parts[1] * 60 + parts[2];
  }

  async function loadTrickplay(vttUrl) {
    const response = await fetch(vttUrl);
    if (!response.ok) return [];
    const text = await response.text();
    const cues = [];
    for (const block of text.replace(/\r/g, "").split("\n\n")) {
      const lines = block.split("\n").filter(Boolean);
      const timing = lines.findIndex((l) => l.includes("-->"));
      if (timing < 0 || !lines[timing + 1]) continue;
      const [from, to] = lines[timing].split("-->");
      const [ref, hash] = lines[timing + 1].split("#xywh=");
      if (!hash) continue;
      const [x, y, w, h] = hash.split(",").map(Number);
      cues.push({ start: parseVttTime(from), end: parseVttTime(to), url: new URL(ref, vttUrl).href, x, y, w, h });
    }
    return cues;
  }

  function fillSelect(select, options, selected) {
    select.replaceChildren(
      ...options.map(([value, label]) => el("option", { value: String(value), textContent: label })),
    );
    select.value = String(selected);
  }

  async function savePosition(w, { keepalive = false } = {}) {
    const video = w.video;
    if (!w.started || !w.signedIn || !Number.isFinite(video.currentTime)) return;
    const position = Math.max(0, video.currentTime);
    if (Math.abs(position - w.lastSaved) < 0.5) return;
    w.lastSaved = position;
    w.lastSaveAt = Date.now();
    try {
      await api("/api/playback", {
        method: "POST",
        keepalive,
        body: { episodeId: w.episodeId, positionSec: Number(position.toFixed(2)), clientTime: new Date().toISOString() },
      });
      $("player").dataset.savedPosition = position.toFixed(2);
    } catch (e) {
      if (!keepalive) $("watch-status").textContent = `Position not saved: ${e.message}`;
    }
  }

  // ------------------------------------------------------------------ styled subtitles

  // ASS/SSA tracks as their authors styled them, drawn by libass (jassub, as
  // WebAssembly in a worker) on a canvas over the video, with the episode's own
  // fonts. Where it cannot run, the same tracks play as WebVTT through hls.js.
  const JASSUB_URL = "/player/vendor/jassub/jassub.js";
  // Apache-2.0, CJK glyphs for lines whose fonts the episode does not carry.
  const FALLBACK_FONT = "/player/vendor/fonts/DroidSansFallback.woff2";
  let jassubLoading = null;

  function assRendererAvailable() {
    return (
      typeof WebAssembly === "object" &&
      typeof Worker === "function" &&
      typeof OffscreenCanvas === "function" &&
      "transferControlToOffscreen" in HTMLCanvasElement.prototype &&
      "requestVideoFrameCallback" in HTMLVideoElement.prototype
    );
  }

  function loadJassub() {
    if (!jassubLoading) jassubLoading = import(JASSUB_URL).then((module) => module.default);
    return jassubLoading;
  }

  // Absolute URLs: the renderer's worker resolves them against its own script.
  function absolute(url) {
    return new URL(url, location.href).href;
  }

  async function startAssRenderer(w, track, fonts) {
    const JASSUB = await loadJassub();
    const available = {};
    for (const font of fonts) {
      for (const family of font.families || []) available[family.toLowerCase()] = absolute(font.url);
    }
    const renderer = new JASSUB({
      video: w.video,
      subUrl: absolute(track.ass),
      // The fonts the script names, and the CJK fallback, before the first frame.
      fonts: [...track.fonts.map(absolute), absolute(FALLBACK_FONT)],
      availableFonts: available,
      // No local-font permission prompt, no font look-ups on the network.
      queryFonts: false,
    });
    await renderer.ready;
    return renderer;
  }

  async function closeWatch() {
    const w = state.watch;
    if (!w) return;
    state.watch = null;
    await savePosition(w, { keepalive: true });
    for (const [target, type, fn] of w.listeners) target.removeEventListener(type, fn);
    if (w.hls) w.hls.destroy();
    stopAss(w);
    w.video.removeAttribute("src");
    w.video.load();
  }

  function stopAss(w) {
    if (!w.ass) return;
    const { renderer } = w.ass;
    w.ass = null;
    // destroy() also takes its canvas off the page.
    Promise.resolve(renderer.destroy()).catch(() => {});
  }

  function on(w, target, type, fn) {
    target.addEventListener(type, fn);
    w.listeners.push([target, type, fn]);
  }

  async function renderWatch(episodeId) {
    show("view-watch");
    const player = $("player");
    for (const key of Object.keys(player.dataset)) delete player.dataset[key];
    $("watch-status").textContent = "";
    const slug = state.titleOfEpisode[episodeId];
    $("watch-back").href = slug ? `#/title/${encodeURIComponent(slug)}` : "#/";
    const episode = await api(`/api/episodes/${episodeId}`, { auth: false });
    $("watch-title").textContent = `${episode.number}. ${episode.name}`;
    // Public episodes play signed out too, without a saved position.
    const viewer = signedIn();
    if (!viewer && !episode.public) {
      $("watch-status").textContent = "Sign in to watch.";
      player.hidden = true;
      return;
    }
    player.hidden = false;
    const [hlsInfo, saved] = await Promise.all([
      api(`/api/episodes/${episodeId}/hls`),
      viewer ? api(`/api/playback/${episodeId}`).catch(() => ({ positionSec: 0 })) : { positionSec: 0 },
    ]);
    const video = $("video");
    const duration = episode.durationSec || 0;
    let resumeAt = saved.positionSec || 0;
    if (duration && resumeAt >= duration * 0.95) resumeAt = 0; // finished: start over
    const w = {
      episodeId,
      video,
      hls: null,
      listeners: [],
      lastSaved: resumeAt,
      lastSaveAt: Date.now(),
      signedIn: viewer,
      started: false,
      trickplay: [],
      ass: null, // {name, renderer} while an ASS track is drawn
      assChoice: 0, // bumps on every subtitle choice: a slow start of an older one is dropped
    };
    state.watch = w;
    player.dataset.resumeAt = resumeAt.toFixed(2);
    if (resumeAt > 0) $("watch-status").textContent = `Resuming at ${fmtTime(resumeAt)}.`;

    const qualitySelect = $("quality");
    const audioSelect = $("audio");
    const subtitleSelect = $("subtitles");

    // Tracks whose ASS original was kept, when this browser can draw them.
    const styled = assRendererAvailable() ? (hlsInfo.subtitles || []).filter((t) => t.ass) : [];

    if (window.Hls && window.Hls.isSupported()) {
      const Hls = window.Hls;
      const hls = new Hls({ startPosition: resumeAt > 0 ? resumeAt : -1, enableWorker: true });
      w.hls = hls;
      hls.on(Hls.Events.MANIFEST_PARSED, () => {
        const levels = hls.levels.map((level, index) => [index, level.height ? `${level.height}p` : `${Math.round(level.bitrate / 1000)} kb/s`]);
        levels.sort((a, b) => hls.levels[b[0]].height - hls.levels[a[0]].height);
        fillSelect(qualitySelect, [[-1, "Auto"], ...levels], -1);
        player.dataset.levels = hls.levels.map((l) => l.height).join(",");
        video.play().catch(() => {
          $("watch-status").textContent = "Press play to start.";
        });
      });
      hls.on(Hls.Events.AUDIO_TRACKS_UPDATED, () => {
        const tracks = hls.audioTracks;
        fillSelect(audioSelect, tracks.map((t, i) => [i, t.name || t.lang || `Track ${i + 1}`]), hls.audioTrack);
        $("audio-picker").hidden = tracks.length < 2;
        player.dataset.audioTracks = tracks.map((t) => t.lang || t.name).join(",");
      });
      hls.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, () => {
        const tracks = hls.subtitleTracks;
        const options = [[-1, "Off"], ...styled.map((t) => [`ass:${t.name}`, `${t.label || t.language} (styled)`]), ...tracks.map((t, i) => [i, t.name || t.lang])];
        const chosen = w.ass ? `ass:${w.ass.name}` : hls.subtitleDisplay ? hls.subtitleTrack : -1;
        fillSelect(subtitleSelect, options, chosen);
        $("subtitle-picker").hidden = options.length === 1;
        player.dataset.subtitleTracks = tracks.map((t) => t.lang || t.name).join(",");
        player.dataset.styledTracks = styled.map((t) => t.language).join(",");
        if (!w.subtitlesChosen && styled.length) {
          // The author's styling first: the track the source marks default, else the first.
          w.subtitlesChosen = true;
          const first = styled.find((t) => t.default) || styled[0];
          chooseSubtitles(`ass:${first.name}`);
        }
      });
      hls.on(Hls.Events.LEVEL_SWITCHED, (_, data) => {
        const level = hls.levels[data.level];
        player.dataset.level = level ? String(level.height) : "";
      });
      hls.on(Hls.Events.FRAG_CHANGED, (_, data) => {
        const level = hls.levels[data.frag.level];
        if (level) player.dataset.playingLevel = String(level.height);
      });
      hls.on(Hls.Events.AUDIO_TRACK_SWITCHED, (_, data) => {
        const track = hls.audioTracks[data.id];
        player.dataset.audio = track ? track.lang || track.name : "";
        audioSelect.value = String(data.id);
      });
      hls.on(Hls.Events.SUBTITLE_TRACK_SWITCH, (_, data) => {
        if (w.ass) return; // hls.js turned its own (WebVTT) rendering off for the ASS one
        const track = hls.subtitleTracks[data.id];
        player.dataset.subtitles = track ? track.lang || track.name : "off";
      });
      hls.on(Hls.Events.ERROR, (_, data) => {
        if (data.fatal) $("watch-status").textContent = `Playback error: ${data.details}`;
      });
      on(w, qualitySelect, "change", () => {
        hls.currentLevel = Number(qualitySelect.value); // -1: automatic
      });
      on(w, audioSelect, "change", () => {
        hls.audioTrack = Number(audioSelect.value);
      });
      // "ass:<name>": drawn by libass; a number: hls.js's WebVTT track; -1: off.
      const chooseSubtitles = (value) => {
        const choice = ++w.assChoice;
        subtitleSelect.value = String(value);
        const name = String(value).startsWith("ass:") ? String(value).slice(4) : null;
        const track = name && styled.find((t) => t.name === name);
        if (!track) {
          stopAss(w);
          const index = Number(value);
          hls.subtitleDisplay = index >= 0;
          hls.subtitleTrack = index;
          player.dataset.subtitleRenderer = index >= 0 ? "webvtt" : "off";
          return;
        }
        if (w.ass && w.ass.name === name) return;
        stopAss(w);
        // Hidden, not switched off: Chromium leaves a text track that went from
        // disabled back to showing without active cues, so WebVTT stays ready.
        hls.subtitleDisplay = false;
        player.dataset.subtitles = `ass:${track.language}`;
        player.dataset.subtitleRenderer = "starting";
        startAssRenderer(w, track, hlsInfo.fonts || [])
          .then((renderer) => {
            if (choice !== w.assChoice || state.watch !== w) {
              renderer.destroy();
              return;
            }
            w.ass = { name, renderer };
            player.dataset.subtitleRenderer = "ass";
          })
          .catch((error) => {
            if (choice !== w.assChoice) return;
            // The renderer could not start: the same track as WebVTT.
            console.warn("ASS renderer unavailable, using WebVTT", error);
            player.dataset.subtitleRenderer = "webvtt";
            const vtt = hls.subtitleTracks.findIndex((t) => t.lang === track.language);
            chooseSubtitles(vtt);
          });
      };
      on(w, subtitleSelect, "change", () => chooseSubtitles(subtitleSelect.value));
      hls.loadSource(hlsInfo.url);
      hls.attachMedia(video);
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      // Safari: native HLS, one "Auto" quality.
      fillSelect(qualitySelect, [[-1, "Auto"]], -1);
      video.src = hlsInfo.url;
      on(w, video, "loadedmetadata", () => {
        if (resumeAt > 0) video.currentTime = resumeAt;
        video.play().catch(() => {});
      });
    } else {
      $("watch-status").textContent = "This browser cannot play HLS.";
      return;
    }

    // Trickplay thumbnails: thumbs/sprite.vtt beside the master, behind the same token.
    if ((episode.thumbnails || []).some((key) => key.endsWith("thumbs/sprite.vtt"))) {
      const vttUrl = new URL("thumbs/sprite.vtt", new URL(hlsInfo.url, location.href)).href;
      loadTrickplay(vttUrl)
        .then((cues) => {
          w.trickplay = cues;
          player.dataset.trickplay = String(cues.length);
        })
        .catch(() => {});
    }

    // Controls
    const seek = $("seek");
    const played = $("seek-played");
    const buffered = $("seek-buffered");
    const knownDuration = () => (Number.isFinite(video.duration) && video.duration > 0 ? video.duration : duration);
    const ratioAt = (event) => {
      const box = seek.getBoundingClientRect();
      return Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
    };
    const update = () => {
      const d = knownDuration();
      played.style.width = d ? `${(video.currentTime / d) * 100}%` : "0";
      if (video.buffered.length && d) buffered.style.width = `${(video.buffered.end(video.buffered.length - 1) / d) * 100}%`;
      $("time").textContent = `${fmtTime(video.currentTime)} / ${fmtTime(d)}`;
      seek.setAttribute("aria-valuemax", String(Math.round(d)));
      seek.setAttribute("aria-valuenow", String(Math.round(video.currentTime)));
      $("play").textContent = video.paused ? "▶" : "❚❚";
      $("play").setAttribute("aria-label", video.paused ? "Play" : "Pause");
    };
    // "Skip opening" / "Skip ending" while the playhead is inside a marker; in
    // the ending of an episode that has a playable next one, "Next episode".
    const skip = $("skip");
    const markers = (episode.markers || []).filter((m) => m.endSec > m.startSec);
    const markerAt = (t) => markers.find((m) => t >= m.startSec && t < m.endSec - 0.5);
    const nextId = episode.nextEpisodeId || null;
    if (nextId && slug) state.titleOfEpisode[nextId] = slug;
    const actionOf = (m) => (m.kind === "ending" && nextId ? "next" : m.kind);
    const LABELS = { opening: "Skip opening", ending: "Skip ending", next: "Next episode" };
    const showSkip = () => {
      const m = markerAt(video.currentTime);
      skip.hidden = !m;
      if (m) {
        const action = actionOf(m);
        skip.textContent = LABELS[action];
        skip.dataset.kind = m.kind;
        skip.dataset.action = action;
      }
    };
    skip.hidden = true;
    on(w, skip, "click", () => {
      const m = markerAt(video.currentTime);
      skip.hidden = true;
      if (!m) return;
      if (actionOf(m) === "next") location.hash = `#/watch/${nextId}`;
      else video.currentTime = Math.min(m.endSec, knownDuration() || m.endSec);
    });
    on(w, video, "seeked", showSkip);
    on(w, video, "timeupdate", () => {
      showSkip();
      update();
      if (!video.paused && video.currentTime > 0) w.started = true;
      if (!video.paused && Date.now() - w.lastSaveAt >= SAVE_EVERY_MS) savePosition(w);
    });
    on(w, video, "playing", () => {
      w.started = true;
      player.dataset.playing = "true";
    });
    on(w, video, "pause", () => {
      player.dataset.playing = "false";
      update();
      savePosition(w);
    });
    on(w, video, "seeked", () => savePosition(w));
    on(w, video, "ended", () => savePosition(w));
    on(w, video, "progress", update);
    on(w, video, "durationchange", update);
    on(w, $("play"), "click", () => (video.paused ? video.play() : video.pause()));
    on(w, video, "click", () => (video.paused ? video.play() : video.pause()));
    on(w, seek, "click", (event) => {
      const d = knownDuration();
      if (d) video.currentTime = ratioAt(event) * d;
    });
    on(w, seek, "keydown", (event) => {
      if (event.key === "ArrowRight") video.currentTime = Math.min(knownDuration(), video.currentTime + 5);
      else if (event.key === "ArrowLeft") video.currentTime = Math.max(0, video.currentTime - 5);
      else return;
      event.preventDefault();
    });
    const preview = $("trickplay");
    on(w, seek, "mousemove", (event) => {
      const d = knownDuration();
      if (!d || !w.trickplay.length) return;
      const at = ratioAt(event) * d;
      const cue = w.trickplay.find((c) => at >= c.start && at < c.end) || w.trickplay[w.trickplay.length - 1];
      const image = $("trickplay-image");
      image.style.width = `${cue.w}px`;
      image.style.height = `${cue.h}px`;
      image.style.backgroundImage = `url("${cue.url}")`;
      image.style.backgroundPosition = `-${cue.x}px -${cue.y}px`;
      $("trickplay-time").textContent = fmtTime(at);
      preview.style.left = `${ratioAt(event) * 100}%`;
      preview.hidden = false;
    });
    on(w, seek, "mouseleave", () => {
      preview.hidden = true;
    });
    on(w, $("fullscreen"), "click", () => {
      if (document.fullscreenElement) document.exitFullscreen();
      else player.requestFullscreen().catch(() => {});
    });
    on(w, window, "pagehide", () => savePosition(w, { keepalive: true }));
    on(w, document, "visibilitychange", () => {
      if (document.visibilityState === "hidden") savePosition(w, { keepalive: true });
    });
    update();
  }

  // ------------------------------------------------------------------ router

  let routing = Promise.resolve();

  function route() {
    routing = routing.then(async () => {
      clearError();
      const hash = location.hash || "#/";
      const parts = hash.slice(2).split("/").map(decodeURIComponent);
      if (parts[0] !== "watch") await closeWatch();
      try {
        if (parts[0] === "title" && parts[1]) await renderTitle(parts[1]);
        else if (parts[0] === "watch" && parts[1]) {
          await closeWatch();
          await renderWatch(parts[1]);
        } else await renderBrowse();
      } catch (e) {
        showError(e);
      }
      document.body.dataset.view = parts[0] || "browse";
    });
    return routing;
  }

  async function start() {
    try {
      const response = await fetch("/player/config.json");
      if (response.ok) state.config = Object.assign(state.config, await response.json());
    } catch (_) {
      // No config: development sign-in.
    }
    if (state.config.auth === "clerk" && state.config.clerkPublishableKey) {
      try {
        state.clerk = await loadClerk(state.config.clerkPublishableKey);
        // Clerk calls back when its session changes (sign-in, refresh, sign-out):
        // know who the caller is before showing it.
        state.clerk.addListener(async () => {
          await loadMe();
          renderAuth();
        });
      } catch (e) {
        showError(e);
      }
      $("clerk-signin").addEventListener("click", () => state.clerk && state.clerk.redirectToSignIn({ redirectUrl: location.href }));
    } else {
      state.config.auth = "dev";
      try {
        state.session = JSON.parse(localStorage.getItem(TOKEN_KEY) || "null");
      } catch (_) {
        state.session = null;
      }
      if (state.session && state.session.expiresAt && Date.parse(state.session.expiresAt) < Date.now()) setSession(null);
      $("dev-signin").addEventListener("submit", devSignIn);
    }
    $("signout").addEventListener("click", signOut);
    $("search").addEventListener("input", () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => {
        if (!location.hash || location.hash === "#/") route();
        else location.hash = "#/";
      }, 250);
    });
    $("genre").addEventListener("change", () => {
      if (!location.hash || location.hash === "#/") route();
      else location.hash = "#/";
    });
    window.addEventListener("hashchange", route);
    await loadMe();
    renderAuth();
    await route();
    document.body.dataset.ready = "true";
  }

  document.addEventListener("DOMContentLoaded", start);
})();
