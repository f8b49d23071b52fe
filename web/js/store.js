// The storefront: catalog, product page with live stock, cart drawer kept in sync
// across tabs, checkout, and order history with live status.

import { api, ApiError, el, getOrShow, formatMoney, notify, parseMoney, session, signIn, signOut, signUp } from "./api.js";
import { Live } from "./live.js";

const live = new Live();
const main = document.getElementById("main");
const PER_PAGE = 12;
const CARDS = [
  ["tok_visa", "Visa: the payment succeeds."],
  ["tok_mastercard", "Mastercard: the payment succeeds."],
  ["tok_chargeDeclined", "The card is declined."],
  ["tok_chargeDeclinedInsufficientFunds", "Declined for insufficient funds."],
];

let cart = null; // the last cart view from the server
let leaveView = () => {}; // undoes the current view's subscriptions

// ---------- stock ----------

function stockText(p) {
  if (p.archived) return ["No longer sold", "out"];
  const n = p.stock.available;
  if (n === 0) return ["Sold out", "out"];
  if (n <= 5) return [`${n} left`, "low"];
  return ["In stock", ""];
}

function badge(p) {
  const [text, kind] = stockText(p);
  return el("span", { class: `stock-badge ${kind}`, "data-available": p.stock.available }, text);
}

// ---------- catalog ----------

function queryFromHash() {
  const [, qs = ""] = location.hash.split("?");
  return new URLSearchParams(qs);
}

function go(params) {
  const clean = new URLSearchParams();
  for (const [k, v] of params) if (v !== "" && v !== null) clean.set(k, v);
  location.hash = `#/?${clean}`;
}

async function showCatalog() {
  const params = queryFromHash();
  document.getElementById("q").value = params.get("q") || "";
  const apiParams = new URLSearchParams(params);
  apiParams.set("per_page", PER_PAGE);
  const currency = "USD";
  for (const k of ["min_price", "max_price"]) {
    if (params.get(k)) {
      const cents = parseMoney(params.get(k), currency);
      if (cents === null) {
        notify(`${k === "min_price" ? "Minimum" : "Maximum"} price must be an amount such as 12.50.`, "error");
        apiParams.delete(k);
      } else apiParams.set(k, cents);
    }
  }
  const list = await getOrShow(main, `/products?${apiParams}`);
  if (!list) return;
  const facet = (name, label, plural, values) => {
    const select = el(
      "select",
      { id: `f-${name}`, name, onchange: (e) => { params.set(name, e.target.value); params.delete("page"); go(params); } },
      el("option", { value: "" }, `All ${plural}`),
      Object.entries(values).map(([v, n]) => el("option", { value: v, selected: params.get(name) === v }, `${v} (${n})`)),
    );
    return [el("label", { for: `f-${name}` }, label), select];
  };
  const priceForm = el(
    "form",
    {
      id: "price-filter",
      onsubmit: (e) => {
        e.preventDefault();
        params.set("min_price", e.target.min.value.trim());
        params.set("max_price", e.target.max.value.trim());
        params.delete("page");
        go(params);
      },
    },
    el("label", { for: "f-min" }, "Price from / to"),
    el(
      "div",
      { class: "row" },
      el("input", { id: "f-min", name: "min", inputmode: "decimal", placeholder: "0.00", value: params.get("min_price") || "", "aria-label": "Minimum price" }),
      el("input", { id: "f-max", name: "max", inputmode: "decimal", placeholder: "any", value: params.get("max_price") || "", "aria-label": "Maximum price" }),
    ),
    el("button", { type: "submit", class: "secondary spaced" }, "Apply"),
  );
  const sort = el(
    "select",
    { id: "f-sort", onchange: (e) => { params.set("sort", e.target.value); go(params); } },
    [["relevance", "Best match"], ["price_asc", "Price: low to high"], ["price_desc", "Price: high to low"], ["name", "Name"], ["newest", "Newest"]].map(
      ([v, t]) => el("option", { value: v, selected: (params.get("sort") || "relevance") === v }, t),
    ),
  );
  const inStock = el("input", {
    id: "f-in-stock",
    type: "checkbox",
    checked: params.get("in_stock") === "true",
    onchange: (e) => { params.set("in_stock", e.target.checked ? "true" : ""); params.delete("page"); go(params); },
  });
  const page = Number(params.get("page") || 1);
  const pages = Math.max(1, Math.ceil(list.total / PER_PAGE));
  const setPage = (p) => { params.set("page", p); go(params); };
  main.replaceChildren(
    el(
      "div",
      { class: "layout" },
      el(
        "aside",
        { class: "filters", "aria-label": "Filters" },
        facet("category", "Category", "categories", list.facets.category),
        facet("brand", "Brand", "brands", list.facets.brand),
        priceForm,
        el("label", { for: "f-sort" }, "Sort by"),
        sort,
        el("label", { for: "f-in-stock" }, inStock, " In stock only"),
      ),
      el(
        "section",
        { "aria-label": "Products" },
        el("p", { id: "result-count", class: "hint" }, `${list.total} products`),
        el(
          "div",
          { class: "grid" },
          list.items.map((p) =>
            el(
              "article",
              { class: "card product-card", "data-id": p.id },
              el("span", { class: "brand-name" }, p.brand),
              el("h3", {}, el("a", { href: `#/product/${encodeURIComponent(p.id)}` }, p.name)),
              el("div", { class: "price" }, formatMoney(p.price)),
              badge(p),
            ),
          ),
        ),
        list.items.length === 0 ? el("p", {}, "No products match. Try fewer filters.") : null,
        el(
          "nav",
          { class: "pager", "aria-label": "Pages" },
          el("button", { id: "prev-page", class: "secondary", disabled: page <= 1, onclick: () => setPage(page - 1) }, "Previous"),
          el("span", { id: "page-info" }, `Page ${page} of ${pages}`),
          el("button", { id: "next-page", class: "secondary", disabled: page >= pages, onclick: () => setPage(page + 1) }, "Next"),
        ),
      ),
    ),
  );
  // Live stock on the visible cards.
  const topics = list.items.map((p) => `product:${p.id}`);
  for (const t of topics) {
    live.subscribe(t, {
      onSnapshot: (p) => updateCard(p),
      onUpdate: (m) => m.data && updateCard(m.data),
    });
  }
  leaveView = () => topics.forEach((t) => live.unsubscribe(t));
}

function updateCard(p) {
  const card = main.querySelector(`.product-card[data-id="${CSS.escape(p.id)}"]`);
  if (!card) return;
  card.querySelector(".stock-badge").replaceWith(badge(p));
  card.querySelector(".price").textContent = formatMoney(p.price);
}

// ---------- product page ----------

async function showProduct(id) {
  const p = await getOrShow(main, `/products/${encodeURIComponent(id)}`);
  if (!p) return;
  const qty = el("input", { id: "qty", type: "number", min: 1, value: 1, inputmode: "numeric" });
  const add = el("button", { id: "add-to-cart", type: "submit" }, "Add to cart");
  const render = (p) => {
    main.querySelector("#product-name").textContent = p.name;
    main.querySelector("#product-price").textContent = formatMoney(p.price);
    main.querySelector(".stock-badge").replaceWith(badge(p));
    const sellable = !p.archived && p.stock.available > 0;
    add.disabled = !sellable;
    qty.max = Math.max(1, p.stock.available);
  };
  main.replaceChildren(
    el(
      "article",
      { class: "product-page card", "data-id": p.id },
      el("a", { href: "#/" }, "← Back to the catalog"),
      el("span", { class: "brand-name" }, `${p.brand} · ${p.category}`),
      el("h1", { id: "product-name" }, p.name),
      el("div", { id: "product-price", class: "price" }),
      el("span", { class: "stock-badge" }),
      el("p", {}, p.description),
      el(
        "form",
        {
          class: "buy",
          onsubmit: async (e) => {
            e.preventDefault();
            await addToCart(p.id, Number(qty.value));
          },
        },
        el("div", {}, el("label", { for: "qty" }, "Quantity"), qty),
        add,
      ),
    ),
  );
  render(p);
  const topic = `product:${id}`;
  live.subscribe(topic, { onSnapshot: render, onUpdate: (m) => m.data && render(m.data) });
  leaveView = () => live.unsubscribe(topic);
}

async function addToCart(productId, quantity) {
  if (!session()) {
    notify("Sign in to add to your cart.", "error");
    location.hash = "#/signin";
    return;
  }
  if (!Number.isInteger(quantity) || quantity < 1) {
    notify("Quantity must be a whole number of at least 1.", "error");
    return;
  }
  try {
    renderCart(await api("POST", "/cart/items", { product_id: productId, quantity }));
    notify("Added to your cart.");
  } catch (e) {
    notify(e.message, "error");
  }
}

// ---------- cart drawer ----------

function renderCart(view) {
  if (view && cart && view.version < cart.version) return; // an older view arrived late
  cart = view;
  document.getElementById("cart-count").textContent = view ? view.total_units : 0;
  const body = document.getElementById("cart-body");
  if (!session()) {
    body.replaceChildren(el("p", {}, el("a", { href: "#/signin" }, "Sign in"), " to use your cart."));
    return;
  }
  if (!view || view.items.length === 0) {
    body.replaceChildren(el("p", { id: "cart-empty" }, "Your cart is empty."));
    return;
  }
  const setQty = async (line, q) => {
    try {
      const path = `/cart/items/${encodeURIComponent(line.product_id)}`;
      renderCart(q < 1 ? await api("DELETE", path) : await api("PATCH", path, { quantity: q }));
    } catch (e) {
      notify(e.message, "error");
    }
  };
  body.replaceChildren(
    el(
      "div",
      { id: "cart-lines" },
      view.items.map((l) =>
        el(
          "div",
          { class: "cart-line", "data-product": l.product_id },
          el("strong", {}, l.name),
          el("span", {}, formatMoney(l.line_total)),
          el(
            "div",
            { class: "qty" },
            el("button", { type: "button", class: "secondary", "aria-label": `One less ${l.name}`, onclick: () => setQty(l, l.quantity - 1) }, "−"),
            el("span", { class: "line-qty" }, l.quantity),
            el("button", { type: "button", class: "secondary", "aria-label": `One more ${l.name}`, onclick: () => setQty(l, l.quantity + 1) }, "+"),
          ),
          el("button", { type: "button", class: "secondary", onclick: () => setQty(l, 0) }, "Remove"),
        ),
      ),
    ),
    el("div", { class: "total" }, "Total: ", el("span", { id: "cart-total" }, formatMoney(view.total))),
    el("button", { id: "go-checkout", type: "button", onclick: () => { toggleCart(false); location.hash = "#/checkout"; } }, "Check out"),
  );
}

function toggleCart(open) {
  const drawer = document.getElementById("cart-drawer");
  const button = document.getElementById("cart-button");
  drawer.hidden = !open;
  button.setAttribute("aria-expanded", String(open));
  if (open) document.getElementById("cart-close").focus();
}

function watchCart() {
  if (session()) {
    live.subscribe("cart", { onSnapshot: renderCart, onUpdate: (m) => renderCart(m.data) });
  } else {
    live.unsubscribe("cart");
    cart = null;
    renderCart(null);
  }
}

// ---------- account ----------

function renderAccount() {
  const s = session();
  const box = document.getElementById("account");
  box.replaceChildren(
    s
      ? el("span", {}, el("span", { id: "signed-in-as" }, s.user.email), " ",
          el("button", { type: "button", class: "secondary", id: "sign-out", onclick: async () => { await signOut(); location.hash = "#/"; } }, "Sign out"))
      : el("span", {}, el("a", { href: "#/signin", id: "sign-in-link" }, "Sign in"), " · ", el("a", { href: "#/signup" }, "Sign up")),
  );
}

function field(id, label, attrs = {}) {
  return [el("label", { for: id }, label), el("input", { id, name: id, required: true, ...attrs })];
}

function accountForm(kind) {
  const up = kind === "signup";
  const error = el("p", { id: "form-error", class: "form-error", role: "alert" });
  const form = el(
    "form",
    {
      class: "form card",
      id: `${kind}-form`,
      onsubmit: async (e) => {
        e.preventDefault();
        const f = e.target;
        error.textContent = "";
        try {
          if (up) await signUp(f.name.value, f.email.value, f.password.value);
          else await signIn(f.email.value, f.password.value);
          location.hash = "#/";
        } catch (err) {
          error.textContent = err.message;
        }
      },
    },
    el("h1", {}, up ? "Create an account" : "Sign in"),
    up ? field("name", "Name", { autocomplete: "name" }) : null,
    field("email", "Email", { type: "email", autocomplete: "email" }),
    field("password", "Password", { type: "password", autocomplete: up ? "new-password" : "current-password", minlength: up ? 8 : undefined }),
    up ? el("p", { class: "hint" }, "At least 8 characters.") : null,
    error,
    el("button", { type: "submit", id: `${kind}-submit` }, up ? "Sign up" : "Sign in"),
    el("p", {}, up ? el("a", { href: "#/signin" }, "I have an account") : el("a", { href: "#/signup" }, "Create an account")),
  );
  main.replaceChildren(form);
  form.querySelector("input").focus();
}

// ---------- checkout ----------

function showCheckout() {
  if (!session()) {
    location.hash = "#/signin";
    return;
  }
  const error = el("p", { id: "checkout-error", class: "form-error", role: "alert" });
  // One key per visit to this page: a retry after a network failure cannot pay twice.
  const key = crypto.randomUUID();
  const form = el(
    "form",
    {
      class: "form card",
      id: "checkout-form",
      onsubmit: async (e) => {
        e.preventDefault();
        const f = e.target;
        error.textContent = "";
        const button = f.querySelector("button[type=submit]");
        button.disabled = true;
        button.textContent = "Paying…";
        try {
          const order = await api(
            "POST",
            "/checkout",
            {
              payment: { token: f.card.value },
              shipping_address: {
                name: f.fullname.value, line1: f.line1.value, city: f.city.value,
                postal_code: f.postal.value, country: f.country.value.toUpperCase(),
              },
            },
            { "Idempotency-Key": key },
          );
          notify("Thank you! Your order is placed.");
          location.hash = `#/orders/${encodeURIComponent(order.id)}`;
        } catch (err) {
          error.textContent =
            err.status === 402 ? `${err.message} Choose another card and try again.` : err.message;
          button.disabled = false;
          button.textContent = "Place order";
        }
      },
    },
    el("h1", {}, "Checkout"),
    el("p", {}, "Total: ", el("strong", { id: "checkout-total" }, cart ? formatMoney(cart.total) : "")),
    field("fullname", "Full name", { autocomplete: "name" }),
    field("line1", "Address", { autocomplete: "address-line1" }),
    field("city", "City", { autocomplete: "address-level2" }),
    field("postal", "Postal code", { autocomplete: "postal-code" }),
    field("country", "Country (2-letter code, e.g. US)", { autocomplete: "country", maxlength: 2, value: "US" }),
    el("label", { for: "card" }, "Card"),
    el("select", { id: "card", name: "card" }, CARDS.map(([t, d]) => el("option", { value: t }, `${t} — ${d}`))),
    el(
      "details",
      {},
      el("summary", {}, "About the test cards"),
      el("p", { class: "hint" }, "This shop uses a test payment provider: no money moves. Each token stands for a card that behaves as described."),
      el("ul", { class: "tokens" }, CARDS.map(([t, d]) => el("li", {}, el("code", {}, t), ": ", d))),
    ),
    error,
    el("button", { type: "submit", id: "place-order" }, "Place order"),
  );
  main.replaceChildren(form);
}

// ---------- orders ----------

function orderRow(o) {
  return el(
    "tr",
    { "data-order": o.id },
    el("td", {}, el("a", { href: `#/orders/${encodeURIComponent(o.id)}` }, o.id)),
    el("td", {}, new Date(o.created_at).toLocaleString()),
    el("td", {}, formatMoney(o.total)),
    el("td", { class: `status order-status ${o.status}` }, o.status.replace("_", " ")),
  );
}

function showOrders(one) {
  if (!session()) {
    location.hash = "#/signin";
    return;
  }
  const orders = new Map();
  const body = el("tbody", {});
  const render = () => {
    const list = [...orders.values()].filter((o) => !one || o.id === one).sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
    body.replaceChildren(...list.map(orderRow));
    if (one && orders.has(one)) detail.replaceChildren(orderDetail(orders.get(one)));
  };
  const detail = el("div", { id: "order-detail" });
  main.replaceChildren(
    el("h1", {}, one ? "Your order" : "Your orders"),
    el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Order"), el("th", {}, "Placed"), el("th", {}, "Total"), el("th", {}, "Status"))), body),
    detail,
  );
  // Keep the newest version of each order, whichever way it came.
  const keep = (o) => {
    const known = orders.get(o.id);
    if (!known || known.version <= o.version) orders.set(o.id, o);
  };
  live.subscribe("orders", {
    onSnapshot: (d) => { d.orders.forEach(keep); render(); },
    onUpdate: (m) => { keep(m.data); render(); },
  });
  // The order just placed may be newer than the order list the snapshot came from.
  if (one) {
    api("GET", `/orders/${encodeURIComponent(one)}`)
      .then((o) => { keep(o); render(); })
      .catch((e) => detail.replaceChildren(el("p", { class: "form-error", role: "alert" }, e.message)));
  }
  leaveView = () => live.unsubscribe("orders");
}

function orderDetail(o) {
  const cancel = async () => {
    try {
      await api("POST", `/orders/${encodeURIComponent(o.id)}/cancel`);
    } catch (e) {
      notify(e.message, "error");
    }
  };
  return el(
    "section",
    { class: "card" },
    el("h2", {}, "Items"),
    el("ul", {}, o.lines.map((l) => el("li", {}, `${l.quantity} × ${l.name || l.product_id} — ${formatMoney(l.line_total)}`))),
    o.tracking_number ? el("p", {}, `Shipped with ${o.carrier}, tracking ${o.tracking_number}`) : null,
    o.cancel_reason ? el("p", {}, `Cancelled: ${o.cancel_reason}`) : null,
    el("h2", {}, "History"),
    el("ol", {}, o.history.map((h) => el("li", {}, `${h.status.replace("_", " ")} — ${new Date(h.at).toLocaleString()}`))),
    ["paid", "pending_payment"].includes(o.status) ? el("button", { class: "danger", onclick: cancel }, "Cancel order") : null,
  );
}

// ---------- routing ----------

async function route() {
  leaveView();
  leaveView = () => {};
  const hash = location.hash || "#/";
  const [path] = hash.slice(1).split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "product" && parts[1]) await showProduct(parts[1]);
  else if (parts[0] === "signin") accountForm("signin");
  else if (parts[0] === "signup") accountForm("signup");
  else if (parts[0] === "checkout") showCheckout();
  else if (parts[0] === "orders") showOrders(parts[1]);
  else await showCatalog();
}

document.getElementById("search").addEventListener("submit", (e) => {
  e.preventDefault();
  const params = queryFromHash();
  params.set("q", document.getElementById("q").value.trim());
  params.delete("page");
  go(params);
});
document.getElementById("cart-button").addEventListener("click", () => toggleCart(document.getElementById("cart-drawer").hidden));
document.getElementById("cart-close").addEventListener("click", () => toggleCart(false));
document.addEventListener("keydown", (e) => e.key === "Escape" && toggleCart(false));
window.addEventListener("hashchange", route);
window.addEventListener("session", () => {
  renderAccount();
  live.reauthenticate();
  watchCart();
});
window.addEventListener("unhandledrejection", (e) => {
  if (e.reason instanceof ApiError) notify(e.reason.message, "error");
});

renderAccount();
watchCart();
route();
