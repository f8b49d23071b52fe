// The websocket client: one connection per page, re-connected with backoff, every
// subscription restored with a fresh snapshot. An update whose `prev_seq` is not the
// last `seq` seen for its entity means something was missed: the topic is re-subscribed.

import { accessToken } from "./api.js";

// Topics whose updates chain per entity (prev_seq == the last seq).
const CHAINED = (topic) => topic.startsWith("product:") || topic === "cart" || topic === "orders";

export class Live {
  constructor() {
    this.handlers = new Map(); // topic -> { onSnapshot, onUpdate, onError }
    this.seqs = new Map(); // topic -> Map(entity -> seq)
    this.ws = null;
    this.backoff = 500;
    this.status = "connecting";
    this.authed = false;
    this.ready = false; // welcomed and signed in: subscriptions may be sent
    this.connect();
  }

  setStatus(status) {
    this.status = status;
    const badge = document.getElementById("live-status");
    if (badge) {
      badge.textContent = status === "live" ? "Live" : status === "connecting" ? "Connecting…" : "Reconnecting…";
      badge.dataset.state = status;
    }
  }

  connect() {
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/v1/ws`;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onmessage = (e) => this.onMessage(JSON.parse(e.data));
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.setStatus("reconnecting");
      this.authed = false;
      this.ready = false;
      setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 10000);
    };
  }

  async onWelcome() {
    this.backoff = 500;
    await this.signIn();
    this.ready = true;
    for (const topic of this.handlers.keys()) this.send({ type: "subscribe", topic });
    this.setStatus("live");
  }

  /** Signs the connection in with the current session, if any. */
  async signIn() {
    const token = await accessToken();
    if (token) this.send({ type: "auth", token });
    this.authed = !!token;
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  /** Calls onSnapshot(data) with the current state, then onUpdate(msg) for each change. */
  subscribe(topic, { onSnapshot = () => {}, onUpdate = () => {}, onError = () => {} }) {
    this.handlers.set(topic, { onSnapshot, onUpdate, onError });
    if (this.ready) this.send({ type: "subscribe", topic });
  }

  unsubscribe(topic) {
    if (!this.handlers.delete(topic)) return;
    this.seqs.delete(topic);
    this.send({ type: "unsubscribe", topic });
  }

  /** After signing in or out: private topics need the new identity. */
  async reauthenticate() {
    if (this.ws) {
      const old = this.ws;
      this.ws = null;
      this.ready = false;
      old.close();
    }
    this.connect();
  }

  onMessage(msg) {
    if (msg.type === "welcome") return this.onWelcome();
    if (msg.type === "token_expired" || (msg.type === "error" && msg.code === "token_expired")) {
      return this.reauthenticate();
    }
    const h = msg.topic && this.handlers.get(msg.topic);
    if (!h) return;
    if (msg.type === "snapshot") {
      const seqs = new Map();
      if (msg.topic.startsWith("product:")) seqs.set(msg.topic.slice(8), msg.seq);
      if (msg.topic === "cart") seqs.set("cart", msg.seq);
      if (msg.topic === "orders") for (const o of msg.data.orders) seqs.set(o.id, o.version);
      this.seqs.set(msg.topic, seqs);
      h.onSnapshot(msg.data, msg);
    } else if (msg.type === "update") {
      if (CHAINED(msg.topic)) {
        const seqs = this.seqs.get(msg.topic) || new Map();
        const key = msg.topic === "cart" ? "cart" : msg.id;
        const known = seqs.get(key);
        if (known !== undefined && msg.seq <= known) return; // already shown
        if (known !== undefined && msg.prev_seq !== known) {
          this.send({ type: "subscribe", topic: msg.topic }); // missed something: start over
          return;
        }
        seqs.set(key, msg.seq);
        this.seqs.set(msg.topic, seqs);
      }
      h.onUpdate(msg);
    } else if (msg.type === "resync") {
      this.send({ type: "subscribe", topic: msg.topic });
    } else if (msg.type === "error") {
      h.onError(msg);
    }
  }
}
