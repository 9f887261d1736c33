// The /index page: the public API over fetch(), live updates over one WebSocket (/v1/stream).
// Plain browser JavaScript, no build step and nothing loaded from elsewhere. Every value from the
// server is put on the page as text (textContent), never as HTML. auction.js draws the offers.
"use strict";

const LIST_SIZE = 25;          // offers shown (and followed live) at once
const LOG_LIMIT = 300;         // event-log lines kept
const BID_POLLS = 30;          // how often a placed bid's outcome is asked for, 400 ms apart
const TICK_MS = 250;           // the countdown's refresh

const $ = (id) => document.getElementById(id);
const state = {
  token: sessionStorage.getItem("auction.token"),
  username: null,
  ws: null,
  retry: 0,
  offers: new Map(),           // id -> offer, for the list
  order: [],                   // ids in list order (newest first)
  followed: new Set(),         // offer ids this socket is subscribed to
  open: null,                  // id of the offer shown in detail
  detail: null,                // that offer, as last drawn (the countdown reads its ends_at)
  versions: new Map(),         // offer id -> the highest version this page has shown
};

// --- small things ---------------------------------------------------------------------------------

function say(text, kind = "") {
  const el = $("status");
  el.textContent = text;
  el.className = kind;
}

// --- HTTP -----------------------------------------------------------------------------------------

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!resp.ok) {
    const error = new Error((data && data.detail) || `${resp.status} ${resp.statusText}`);
    error.status = resp.status;
    if (resp.status === 401 && state.token) logout("Your session ended: log in again.");
    throw error;
  }
  return data;
}

// --- event log ------------------------------------------------------------------------------------

function log(direction, payload) {
  const li = document.createElement("li");
  const time = new Date().toLocaleTimeString();
  let text = payload;
  if (typeof payload === "object") {
    const shown = { ...payload };
    if (shown.token) shown.token = shown.token.slice(0, 10) + "…"; // do not spread the token around
    text = JSON.stringify(shown);
  }
  const arrow = { in: "←", out: "→", meta: "·" }[direction];
  li.textContent = `${time} ${arrow} ${text}`;
  li.className = direction === "out" ? "out" : direction === "meta" ? "meta" : "";
  if (typeof payload === "object" && payload.event === "error") li.className = "error";
  const list = $("event-log");
  list.prepend(li);
  while (list.children.length > LOG_LIMIT) list.lastChild.remove();
}

// --- the socket -----------------------------------------------------------------------------------

function setConnected(on, text) {
  const pill = $("connection");
  pill.textContent = text || (on ? "live" : "offline");
  pill.className = "pill " + (on ? "on" : "off");
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/v1/stream`);
  state.ws = ws;
  state.followed.clear();
  setConnected(false, "connecting…");
  ws.onopen = () => {
    log("meta", "socket open");
    send({ event: "authenticate" });
  };
  ws.onmessage = (e) => {
    let message;
    try { message = JSON.parse(e.data); } catch (_) { log("in", e.data); return; }
    log("in", message);
    handle(message);
  };
  ws.onclose = (e) => {
    log("meta", `socket closed: ${e.code}${e.reason ? " " + e.reason : ""}`);
    if (state.ws !== ws) return; // replaced or logged out on purpose
    state.ws = null;
    setConnected(false);
    if (e.code === 4401) { logout("Your session ended (the token expired or was refused): log in again."); return; }
    if (!state.token) return;
    const delay = Math.min(10000, 500 * 2 ** state.retry++);
    say(`Live updates interrupted (${e.code}); reconnecting in ${Math.round(delay / 100) / 10} s…`, "error");
    setTimeout(() => { if (state.token && !state.ws) connect(); }, delay);
  };
}

function send(message) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return;
  const full = { ...message, token: state.token };
  log("out", full);
  state.ws.send(JSON.stringify(full));
}

function follow(offerId) {
  if (state.followed.has(offerId)) return;
  state.followed.add(offerId);
  send({ event: "subscribe", offer_id: offerId });
}

function unfollow(offerId) {
  if (!state.followed.delete(offerId)) return;
  send({ event: "unsubscribe", offer_id: offerId });
}

function handle(message) {
  switch (message.event) {
    case "authenticated":
      state.retry = 0;
      state.username = message.data.username;
      $("who").textContent = `logged in as ${state.username}`;
      setConnected(true);
      if ($("status").className === "error") say("");
      send({ event: "get_offers", page: 0, size: LIST_SIZE, sortkey: "-created" });
      if (state.open) follow(state.open);
      break;
    case "offers":
      showList(message.data);
      break;
    case "offerCreated":
      addOffer(message.data);
      break;
    case "offerUpdated":
      updateOffer(message.data);
      break;
    case "offerSold":
      // Subscribers get it, and the seller gets their own copy even unsubscribed (once either way).
      if (updateOffer(message.data.offer)) sellerAlert(message.data.offer, message.data.bid);
      break;
    case "offerEnded":
      if (updateOffer(message.data)) sellerAlert(message.data, null);
      break;
    case "bidUpdated":
      // Private: one of this user's bids changed status (leading, outbid, won, ...).
      updateOffer(message.data.offer);
      bidAlert(message.data.bid, message.data.offer);
      if (message.data.offer.id === state.open) loadBids(state.open);
      break;
    case "error":
      say(message.error, "error");
      break;
    default:
      break; // subscribed / unsubscribed: the log shows them
  }
}

// --- the offer list -------------------------------------------------------------------------------

function showList(offers) {
  const keep = new Set(offers.map((o) => o.id));
  for (const id of state.order) if (!keep.has(id) && id !== state.open) unfollow(id);
  state.offers.clear();
  state.order = [];
  for (const offer of offers) {
    state.offers.set(offer.id, offer);
    state.order.push(offer.id);
    follow(offer.id); // so every listed price moves live
  }
  renderList();
}

function addOffer(offer) {
  if (state.offers.has(offer.id) || !newer(offer)) return;
  state.offers.set(offer.id, offer);
  state.order.unshift(offer.id);
  follow(offer.id);
  while (state.order.length > LIST_SIZE) {
    const dropped = state.order.pop();
    state.offers.delete(dropped);
    if (dropped !== state.open) unfollow(dropped);
  }
  renderList(offer.id);
}

// False (and nothing drawn) for a version older than one already shown: a client keeps the highest.
function newer(offer) {
  const seen = state.versions.get(offer.id);
  if (typeof offer.version !== "number") return true;
  if (seen !== undefined && offer.version < seen) return false;
  state.versions.set(offer.id, offer.version);
  return true;
}

function updateOffer(offer) {
  if (!newer(offer)) return false;
  if (state.offers.has(offer.id)) {
    state.offers.set(offer.id, offer);
    renderList(offer.id);
  }
  if (offer.id === state.open) {
    renderDetail(offer, true);
    loadBids(offer.id);
  }
  return true;
}

// --- one offer ------------------------------------------------------------------------------------

async function openOffer(id) {
  try {
    const offer = await api("GET", `/v1/offer/${encodeURIComponent(id)}`);
    if (state.open && state.open !== id && !state.offers.has(state.open)) unfollow(state.open);
    state.open = id;
    follow(id);
    $("bid-outcome").textContent = "";
    $("bid-max").value = "";
    const shown = newer(offer) ? offer : state.offers.get(id) || offer; // events may be ahead of GET
    renderDetail(shown, false);
    renderList();
    await loadBids(id);
  } catch (error) {
    say(error.message, "error");
  }
}

function closeDetail() {
  if (state.open && !state.offers.has(state.open)) unfollow(state.open);
  state.open = null;
  state.detail = null;
  $("offer-detail").hidden = true;
  renderList();
}

async function loadBids(offerId) {
  let bids;
  try {
    bids = await api("GET", `/v1/offer/${encodeURIComponent(offerId)}/bids?size=20`);
  } catch (error) {
    say(error.message, "error");
    return;
  }
  if (offerId === state.open) renderBids(bids);
}

async function placeBid(event) {
  event.preventDefault();
  const offerId = state.open;
  const price = Number($("bid-price").value);
  const body = { offer_id: offerId, bid_price: price };
  if ($("bid-max").value) body.max_price = Number($("bid-max").value); // a proxy bid
  $("bid-button").disabled = true;
  try {
    const bid = await api("POST", "/v1/bid", body);
    $("bid-max").value = ""; // a maximum is for one bid: the next one states its own
    $("bid-outcome").textContent = `Bid of ${money(price)} queued…`;
    // The private bidUpdated event says how it went; asking as well covers a socket that is down.
    for (let i = 0; i < BID_POLLS; i++) {
      await new Promise((resolve) => setTimeout(resolve, 400));
      const now = await api("GET", `/v1/bid/${encodeURIComponent(bid.id)}`).catch((error) => {
        if (error.status === 404) return { status: "pending" }; // not recorded yet
        throw error;
      });
      if (now.status !== "pending") {
        const said = { rejected: `rejected: ${now.reason}`, leading: "leads", outbid: "was outbid at once" };
        $("bid-outcome").textContent = `Your bid of ${money(price)} ${said[now.status] || now.status}.`;
        if (offerId === state.open) loadBids(offerId);
        return;
      }
    }
    $("bid-outcome").textContent = `Bid of ${money(price)} is still pending.`;
  } catch (error) {
    $("bid-outcome").textContent = "";
    say(error.message, "error");
  } finally {
    $("bid-button").disabled = false;
  }
}

async function acceptBid(bid) {
  try {
    await api("PUT", `/v1/bid/${encodeURIComponent(bid.id)}`);
    say(`You accepted ${bid.username}'s bid of ${money(bid.bid_price)}.`, "ok");
  } catch (error) {
    say(error.message, "error");
  }
}

async function createOffer(event) {
  event.preventDefault();
  const body = {
    title: $("create-title").value.trim(),
    bid_price: Number($("create-price").value),
    lifetime: Number($("create-lifetime").value || 0),
    soft_close_seconds: Number($("create-soft-close").value || 0),
  };
  if ($("create-reserve").value) body.reserve_price = Number($("create-reserve").value);
  $("create-button").disabled = true;
  try {
    const offer = await api("POST", "/v1/offer", body);
    say(`Offer “${offer.title}” created.`, "ok");
    $("create-title").value = "";
    addOffer(offer); // the offerCreated event may come first or after; either way once
  } catch (error) {
    say(error.message, "error");
  } finally {
    $("create-button").disabled = false;
  }
}

// --- account --------------------------------------------------------------------------------------

async function login(signup) {
  const credentials = { username: $("login-username").value.trim(), password: $("login-password").value };
  try {
    if (signup) await api("POST", "/v1/signup", credentials);
    const { token } = await api("POST", "/v1/login", credentials);
    sessionStorage.setItem("auction.token", token);
    state.token = token;
    say(signup ? "Account created; you are logged in." : "", signup ? "ok" : "");
    start();
  } catch (error) {
    say(error.message, "error");
  }
}

function start() {
  $("account").hidden = true;
  $("market").hidden = false;
  $("logout-button").hidden = false;
  connect();
}

function logout(message) {
  sessionStorage.removeItem("auction.token");
  state.token = null;
  state.username = null;
  const ws = state.ws;
  state.ws = null;
  if (ws) ws.close(1000, "logged out");
  state.offers.clear();
  state.order = [];
  state.open = null;
  state.detail = null;
  state.versions.clear();
  $("alerts").replaceChildren();
  $("account").hidden = false;
  $("market").hidden = true;
  $("offer-detail").hidden = true;
  $("logout-button").hidden = true;
  $("who").textContent = "not logged in";
  setConnected(false);
  say(message || "", message ? "error" : "");
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (e) => { e.preventDefault(); login(false); });
  $("signup-button").addEventListener("click", () => {
    if ($("login-form").reportValidity()) login(true);
  });
  $("logout-button").addEventListener("click", () => logout());
  $("create-form").addEventListener("submit", createOffer);
  $("bid-form").addEventListener("submit", placeBid);
  $("close-detail").addEventListener("click", closeDetail);
  $("refresh-button").addEventListener("click", () => send({ event: "get_offers", page: 0, size: LIST_SIZE, sortkey: "-created" }));
  $("clear-log").addEventListener("click", () => $("event-log").replaceChildren());
  setInterval(renderCountdown, TICK_MS);
  if (state.token) start();
});
