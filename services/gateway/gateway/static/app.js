// The /index page: the public API over fetch(), live updates over one WebSocket (/v1/stream).
// Plain browser JavaScript, no build step and nothing loaded from elsewhere. Every value from the
// server is put on the page as text (textContent), never as HTML.
"use strict";

const LIST_SIZE = 25;          // offers shown (and followed live) at once
const LOG_LIMIT = 300;         // event-log lines kept
const BID_POLLS = 30;          // how often a placed bid's outcome is asked for, 400 ms apart

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
};

// --- small things ---------------------------------------------------------------------------------

function say(text, kind = "") {
  const el = $("status");
  el.textContent = text;
  el.className = kind;
}

function money(value) {
  return Number(value).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

function stateOf(offer) {
  if (offer.sold) return ["sold", "sold"];
  if (offer.ends_at && new Date(offer.ends_at) <= new Date()) return ["closed", "off"];
  if (offer.go_live && new Date(offer.go_live) > new Date()) return ["not live yet", ""];
  return ["open", "on"];
}

function cell(text, className = "") {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function flash(el) {
  el.classList.remove("flash");
  void el.offsetWidth; // restart the animation
  el.classList.add("flash");
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
      updateOffer(message.data.offer);
      if (message.data.offer.id === state.open) {
        say(`Sold to ${message.data.bid.username} for ${money(message.data.bid.bid_price)}.`, "ok");
        if (message.data.bid.username === state.username) {
          $("bid-outcome").textContent = `Your bid of ${money(message.data.bid.bid_price)} was accepted: it is yours.`;
        }
      }
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
  if (state.offers.has(offer.id)) return;
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

function updateOffer(offer) {
  if (state.offers.has(offer.id)) {
    state.offers.set(offer.id, offer);
    renderList(offer.id);
  }
  if (offer.id === state.open) {
    renderDetail(offer, true);
    loadBids(offer.id);
  }
}

function renderList(changedId) {
  const body = $("offers");
  body.replaceChildren();
  for (const id of state.order) {
    const offer = state.offers.get(id);
    const [label, kind] = stateOf(offer);
    const tr = document.createElement("tr");
    tr.dataset.offerId = id;
    if (id === state.open) tr.className = "selected";
    const pill = document.createElement("span");
    pill.className = `pill ${kind}`;
    pill.textContent = label;
    const stateCell = document.createElement("td");
    stateCell.append(pill);
    tr.append(
      cell(offer.title), cell(money(offer.bid_price), "num price-cell"), cell(offer.created_by),
      cell(String(offer.bid_count), "num"), stateCell,
    );
    tr.addEventListener("click", () => openOffer(id));
    body.append(tr);
    if (id === changedId) flash(tr);
  }
  $("offers-empty").hidden = state.order.length > 0;
}

// --- one offer ------------------------------------------------------------------------------------

async function openOffer(id) {
  try {
    const offer = await api("GET", `/v1/offer/${encodeURIComponent(id)}`);
    if (state.open && state.open !== id && !state.offers.has(state.open)) unfollow(state.open);
    state.open = id;
    follow(id);
    $("bid-outcome").textContent = "";
    renderDetail(offer, false);
    renderList();
    await loadBids(id);
  } catch (error) {
    say(error.message, "error");
  }
}

function closeDetail() {
  if (state.open && !state.offers.has(state.open)) unfollow(state.open);
  state.open = null;
  $("offer-detail").hidden = true;
  renderList();
}

function renderDetail(offer, changed) {
  $("offer-detail").hidden = false;
  $("offer-detail").dataset.offerId = offer.id;
  $("detail-title").textContent = offer.title;
  $("detail-price").textContent = money(offer.bid_price);
  if (changed) flash($("detail-price"));
  const [label, kind] = stateOf(offer);
  $("detail-state").textContent = label;
  $("detail-state").className = `pill ${kind}`;
  $("detail-seller").textContent = offer.created_by + (offer.created_by === state.username ? " (you)" : "");
  $("detail-leader").textContent = offer.highest_bidder || "—";
  $("detail-count").textContent = String(offer.bid_count);
  $("detail-ends").textContent = offer.ends_at ? new Date(offer.ends_at).toLocaleString() : "when sold";
  const mine = offer.created_by === state.username;
  const open = label === "open";
  $("bid-form").hidden = mine || !open;
  const input = $("bid-price");
  if (!changed || Number(input.value) <= Number(offer.bid_price)) {
    input.value = (Math.floor(Number(offer.bid_price)) + 1).toFixed(2);
  }
  $("offer-detail").dataset.mine = mine ? "yes" : "no";
  $("offer-detail").dataset.sold = offer.sold ? "yes" : "no";
}

async function loadBids(offerId) {
  let bids;
  try {
    bids = await api("GET", `/v1/offer/${encodeURIComponent(offerId)}/bids?size=20`);
  } catch (error) {
    say(error.message, "error");
    return;
  }
  if (offerId !== state.open) return;
  const mine = $("offer-detail").dataset.mine === "yes";
  const sold = $("offer-detail").dataset.sold === "yes";
  const body = $("bids");
  body.replaceChildren();
  for (const bid of bids) {
    const tr = document.createElement("tr");
    tr.dataset.bidId = bid.id;
    const action = document.createElement("td");
    if (mine && !sold && (bid.status === "leading" || bid.status === "outbid")) {
      const button = document.createElement("button");
      button.className = "small accept-button";
      button.textContent = "Accept";
      button.addEventListener("click", () => acceptBid(bid));
      action.append(button);
    }
    const status = bid.status + (bid.reason ? ` (${bid.reason})` : "");
    tr.append(cell(money(bid.bid_price), "num"), cell(bid.username), cell(status), action);
    body.append(tr);
  }
  if (!bids.length) {
    const tr = document.createElement("tr");
    tr.append(cell("no bids yet", "muted"));
    body.append(tr);
  }
}

async function placeBid(event) {
  event.preventDefault();
  const offerId = state.open;
  const price = Number($("bid-price").value);
  $("bid-button").disabled = true;
  try {
    const bid = await api("POST", "/v1/bid", { offer_id: offerId, bid_price: price });
    $("bid-outcome").textContent = `Bid of ${money(price)} queued…`;
    for (let i = 0; i < BID_POLLS; i++) {
      await new Promise((resolve) => setTimeout(resolve, 400));
      const now = await api("GET", `/v1/bid/${encodeURIComponent(bid.id)}`);
      if (now.status !== "pending") {
        $("bid-outcome").textContent = now.status === "rejected"
          ? `Bid of ${money(price)} rejected: ${now.reason}.`
          : `Bid of ${money(price)}: ${now.status}.`;
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
  };
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
  if (state.token) start();
});
