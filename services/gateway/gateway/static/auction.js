// The /index page's view of auctions: the offer list, one offer in detail (price, next bid, reserve,
// a countdown that follows extensions, the end) and the private alerts. Loaded before app.js, which
// owns the state, the HTTP calls and the socket; every value is put on the page as text.
"use strict";

const STATUS_LABELS = { scheduled: "not live yet", live: "live", ended: "ended", sold: "sold" };
const END_REASONS = {
  accepted: "the seller accepted a bid",
  ended: "closed with a winner",
  no_bids: "no bids",
  reserve_not_met: "reserve not met",
};

function money(value) {
  return Number(value).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

// The state to show: the server's `status`, with time moving it on locally until the server says so.
function statusOf(offer) {
  const status = offer.status || (offer.sold ? "sold" : "live");
  if (status === "scheduled" && offer.go_live && new Date(offer.go_live) <= new Date()) return "live";
  return status;
}

function pillKind(status) {
  return { live: "on", ended: "off", sold: "sold" }[status] || "";
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

// "1h 02m 05s", "2m 05s", "45s".
function duration(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
  const pad = (n) => String(n).padStart(2, "0");
  if (h) return `${h}h ${pad(m)}m ${pad(s)}s`;
  if (m) return `${m}m ${pad(s)}s`;
  return `${s}s`;
}

// --- private alerts -------------------------------------------------------------------------------

function alertUser(text, kind = "") {
  const li = document.createElement("li");
  li.textContent = text;
  li.className = kind;
  const list = $("alerts");
  list.prepend(li);
  while (list.children.length > 5) list.lastChild.remove();
}

// A bid of this user changed status (bidUpdated): tell them what it means for them.
function bidAlert(bid, offer) {
  const title = `“${offer.title}”`;
  const price = money(offer.bid_price);
  const texts = {
    leading: [`Your bid leads on ${title}: the price is ${price}.`, "good"],
    outbid: [`You were outbid on ${title}: the price is now ${price}, next bid at least ${money(offer.min_next_bid)}.`, "bad"],
    rejected: [`Your bid of ${money(bid.bid_price)} on ${title} was rejected: ${(bid.reason || "").replace(/_/g, " ")}.`, "bad"],
    won: [`You won ${title} for ${price}!`, "good"],
    accepted: [`The seller accepted your bid: ${title} is yours for ${price}.`, "good"],
  };
  const said = texts[bid.status];
  if (said) alertUser(said[0], said[1]);
  if (offer.id === state.open) {
    $("bid-outcome").textContent = said ? said[0] : `Your earlier bid is ${bid.status}.`;
  }
}

// The seller's own copy of the end of their offer.
function sellerAlert(offer, bid) {
  if (offer.created_by !== state.username) return;
  if (bid) alertUser(`Your offer “${offer.title}” sold to ${bid.username} for ${money(offer.bid_price)}.`, "good");
  else alertUser(`Your offer “${offer.title}” ended without a sale: ${END_REASONS[offer.end_reason] || offer.end_reason}.`, "bad");
}

// --- the offer list -------------------------------------------------------------------------------

function renderList(changedId) {
  const body = $("offers");
  body.replaceChildren();
  for (const id of state.order) {
    const offer = state.offers.get(id);
    const status = statusOf(offer);
    const tr = document.createElement("tr");
    tr.dataset.offerId = id;
    if (id === state.open) tr.className = "selected";
    const pill = document.createElement("span");
    pill.className = `pill ${pillKind(status)}`;
    pill.textContent = STATUS_LABELS[status] || status;
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

function renderDetail(offer, changed) {
  const previous = state.detail;
  state.detail = offer;
  $("offer-detail").hidden = false;
  $("offer-detail").dataset.offerId = offer.id;
  $("detail-title").textContent = offer.title;
  $("detail-price").textContent = money(offer.bid_price);
  if (changed && previous && previous.bid_price !== offer.bid_price) flash($("detail-price"));
  const status = statusOf(offer);
  $("detail-state").textContent = STATUS_LABELS[status] || status;
  $("detail-state").className = `pill ${pillKind(status)}`;
  const reserve = $("detail-reserve");
  reserve.hidden = offer.reserve_met === null || offer.reserve_met === undefined;
  reserve.textContent = offer.reserve_met ? "reserve met" : "reserve not met";
  reserve.className = `pill ${offer.reserve_met ? "on" : "off"}`;
  $("detail-min-next").textContent = money(offer.min_next_bid ?? offer.bid_price);
  $("detail-next").hidden = status === "sold" || status === "ended";
  $("detail-seller").textContent = offer.created_by + (offer.created_by === state.username ? " (you)" : "");
  $("detail-leader").textContent = offer.highest_bidder
    ? offer.highest_bidder + (offer.highest_bidder === state.username ? " (you)" : "") : "—";
  $("detail-leader-label").textContent = status === "sold" ? "winner" : "leading bidder";
  $("detail-count").textContent = String(offer.bid_count);
  $("detail-ends").textContent = offer.ends_at ? new Date(offer.ends_at).toLocaleString() : "when sold";
  if (changed && previous && previous.id === offer.id && previous.ends_at !== offer.ends_at && offer.ends_at) {
    flash($("detail-countdown"));
  }
  renderEnd(offer);
  renderCountdown();
  const mine = offer.created_by === state.username;
  $("bid-form").hidden = mine || status !== "live";
  const input = $("bid-price");
  const least = Number(offer.min_next_bid ?? offer.bid_price);
  if (!changed || Number(input.value) < least) input.value = least.toFixed(2);
  $("offer-detail").dataset.mine = mine ? "yes" : "no";
  $("offer-detail").dataset.status = status;
}

// How the auction ended, from this person's side: won, sold (to someone), or ended unsold.
function renderEnd(offer) {
  const banner = $("detail-end");
  const status = statusOf(offer);
  banner.hidden = status !== "sold" && status !== "ended";
  banner.className = "end-banner";
  if (status === "sold" && offer.highest_bidder === state.username) {
    banner.textContent = `You won: it is yours for ${money(offer.bid_price)}.`;
    banner.className = "end-banner won";
  } else if (status === "sold") {
    banner.textContent = `Sold to ${offer.highest_bidder} for ${money(offer.bid_price)} (${END_REASONS[offer.end_reason] || "sold"}).`;
  } else if (status === "ended") {
    banner.textContent = `Ended without a sale: ${END_REASONS[offer.end_reason] || offer.end_reason}.`;
  }
}

// Ticks every quarter second; an extension (a new ends_at in offerUpdated) just moves the target.
function renderCountdown() {
  const el = $("detail-countdown");
  const offer = state.detail;
  if (!offer) return;
  const status = statusOf(offer);
  el.dataset.endsAt = offer.ends_at || "";
  el.classList.remove("soon");
  if (status === "sold" || status === "ended") {
    el.textContent = offer.ends_at ? `ended ${new Date(offer.ends_at).toLocaleTimeString()}` : "ended";
  } else if (!offer.ends_at) {
    el.textContent = "open until the seller accepts a bid";
  } else if (status === "scheduled") {
    el.textContent = `opens in ${duration(new Date(offer.go_live) - new Date())}`;
  } else {
    const left = new Date(offer.ends_at) - new Date();
    const extended = offer.hard_ends_at && offer.soft_close_seconds > 0 && offer.lifetime > 0
      && new Date(offer.ends_at) - new Date(offer.go_live) > offer.lifetime * 1000;
    el.textContent = left > 0
      ? `ends in ${duration(left)}${extended ? " (extended)" : ""}`
      : "closing…"; // the end is decided by the server, a moment after ends_at
    if (left > 0 && offer.soft_close_seconds > 0 && left <= offer.soft_close_seconds * 1000) {
      el.textContent += " — a bid now extends it";
    }
    if (left > 0 && left <= 60000) el.classList.add("soon");
  }
}

function renderBids(bids) {
  const mine = $("offer-detail").dataset.mine === "yes";
  const live = $("offer-detail").dataset.status === "live";
  const body = $("bids");
  body.replaceChildren();
  for (const bid of bids) {
    const tr = document.createElement("tr");
    tr.dataset.bidId = bid.id;
    const action = document.createElement("td");
    if (mine && live && bid.status === "leading") { // only the bid leading now may be accepted
      const button = document.createElement("button");
      button.className = "small accept-button";
      button.textContent = "Accept";
      button.addEventListener("click", () => acceptBid(bid));
      action.append(button);
    }
    const status = bid.status + (bid.reason ? ` (${bid.reason.replace(/_/g, " ")})` : "");
    const price = money(bid.bid_price) + (bid.max_price ? ` (max ${money(bid.max_price)})` : "");
    tr.append(cell(price, "num"), cell(bid.username), cell(status), action);
    body.append(tr);
  }
  if (!bids.length) {
    const tr = document.createElement("tr");
    tr.append(cell("no bids yet", "muted"));
    body.append(tr);
  }
}
