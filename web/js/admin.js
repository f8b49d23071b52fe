// The admin dashboard: live sales (chart, feed, top products), low stock, the product
// list with create / edit / restock / archive, and orders with ship / deliver / return.

import { api, el, formatMoney, getOrShow, notify, parseMoney, session, signIn, signOut, toDecimal } from "./api.js";
import { drawSalesChart } from "./chart.js";
import { Live } from "./live.js";

const main = document.getElementById("main");
const live = new Live();
let currency = "USD";
let tab = "dashboard";

const isAdmin = () => session() && session().user.role === "admin";

function renderAccount() {
  const s = session();
  document.getElementById("account").replaceChildren(
    s ? el("span", {}, s.user.email, " ", el("button", { type: "button", class: "secondary", id: "sign-out", onclick: () => signOut() }, "Sign out")) : "",
  );
}

function signInForm(problem) {
  const error = el("p", { id: "form-error", class: "form-error", role: "alert" }, problem || "");
  main.replaceChildren(
    el(
      "form",
      {
        class: "form card",
        id: "signin-form",
        onsubmit: async (e) => {
          e.preventDefault();
          error.textContent = "";
          try {
            const s = await signIn(e.target.email.value, e.target.password.value);
            if (s.user.role !== "admin") error.textContent = "This account is not an admin account.";
          } catch (err) {
            error.textContent = err.message;
          }
        },
      },
      el("h1", {}, "Admin sign in"),
      el("label", { for: "email" }, "Email"),
      el("input", { id: "email", name: "email", type: "email", required: true, autocomplete: "username" }),
      el("label", { for: "password" }, "Password"),
      el("input", { id: "password", name: "password", type: "password", required: true, autocomplete: "current-password" }),
      error,
      el("button", { type: "submit", id: "signin-submit" }, "Sign in"),
    ),
  );
}

// ---------- dashboard ----------

const board = { ticks: [], pending: 0, pendingOrders: 0, sales: [], low: new Map() };

function money(amount) {
  return formatMoney({ amount: Math.round(amount), currency });
}

function renderKpis() {
  const sum = (f) => board.ticks.reduce((a, t) => a + f(t), 0);
  const set = (id, text) => { const n = document.getElementById(id); if (n) n.textContent = text; };
  // Sales already announced but not yet in a closed second count at once.
  set("kpi-revenue", money(sum((t) => (t.revenue ? t.revenue.amount : 0)) + board.pending));
  set("kpi-orders", String(sum((t) => t.orders) + board.pendingOrders));
  set("kpi-items", String(sum((t) => t.items)));
  const last = board.ticks[board.ticks.length - 1];
  set("kpi-rate", last ? `${last.orders}/s` : "0/s");
  const canvas = document.getElementById("sales-chart");
  if (canvas) drawSalesChart(canvas, board.ticks, money);
  const top = document.getElementById("top-products");
  if (top && last) {
    top.replaceChildren(
      ...(last.top_products.length
        ? last.top_products.map((p) => el("li", {}, `${p.name || p.product_id} — ${p.units} sold`))
        : [el("li", { class: "hint" }, "No sales in the last minute.")]),
    );
  }
}

function saleItem(s) {
  const what = s.lines.map((l) => `${l.name || l.product_id} ×${l.quantity}`).join(", ");
  return el(
    "li",
    { class: s.kind, "data-order": s.order_id },
    `${new Date(s.at).toLocaleTimeString()} · `,
    el("strong", {}, s.kind),
    ` · ${s.order_id} · ${formatMoney(s.amount)}${what ? ` · ${what}` : ""}`,
  );
}

function renderFeed() {
  const feed = document.getElementById("sales-feed");
  if (!feed) return;
  feed.replaceChildren(...(board.sales.length ? board.sales.map(saleItem) : [el("li", { class: "hint" }, "Waiting for sales…")]));
}

function renderLowStock() {
  const list = document.getElementById("low-stock");
  if (!list) return;
  const items = [...board.low.values()].sort((a, b) => a.available - b.available);
  list.replaceChildren(
    ...(items.length
      ? items.map((p) =>
          el(
            "li",
            { "data-product": p.product_id },
            `${p.name} — ${p.available} left `,
            restockForm(p.product_id, 20),
          ),
        )
      : [el("li", { class: "hint" }, "Nothing is low on stock.")]),
  );
}

function watchSales() {
  live.subscribe("admin:sales", {
    onSnapshot: (d) => {
      board.ticks = d.ticks;
      board.sales = d.recent.slice().reverse();
      board.pending = 0;
      board.pendingOrders = 0;
      renderKpis();
      renderFeed();
    },
    onUpdate: (m) => {
      if (m.event === "tick") {
        board.ticks.push(m.data);
        if (board.ticks.length > 60) board.ticks.shift();
        board.pending = 0;
        board.pendingOrders = 0;
        renderKpis();
        return;
      }
      if (m.event === "paid") {
        board.pending += m.data.amount.amount;
        board.pendingOrders += 1;
      }
      board.sales.unshift(m.data);
      board.sales.length = Math.min(board.sales.length, 50);
      renderFeed();
      renderKpis();
      if (tab === "orders") loadOrders();
    },
  });
  live.subscribe("admin:stock", {
    onSnapshot: (d) => { board.low = new Map(d.products.map((p) => [p.product_id, p])); renderLowStock(); },
    onUpdate: (m) => {
      if (m.event === "low_stock") board.low.set(m.data.product_id, m.data);
      else board.low.delete(m.data.product_id);
      renderLowStock();
    },
  });
}

function kpi(id, label) {
  return el("div", { class: "card kpi" }, el("div", { class: "value", id }, "–"), el("div", { class: "label" }, label));
}

function showDashboard() {
  main.append(
    el("div", { class: "kpis" }, kpi("kpi-revenue", "Revenue, last 60 s"), kpi("kpi-orders", "Orders, last 60 s"), kpi("kpi-items", "Items, last 60 s"), kpi("kpi-rate", "Orders, last second")),
    el(
      "div",
      { class: "dash" },
      el(
        "section",
        { class: "card", "aria-label": "Sales per second" },
        el("h2", {}, "Sales per second"),
        el("p", { class: "hint" }, "Bars: revenue (left scale). Line: orders (right scale)."),
        el("canvas", { id: "sales-chart", role: "img", "aria-label": "Revenue and orders per second over the last minute" }),
      ),
      el("section", { class: "card" }, el("h2", {}, "Top products (last minute)"), el("ol", { id: "top-products" })),
      el("section", { class: "card" }, el("h2", {}, "Live sales"), el("ul", { id: "sales-feed", class: "feed", "aria-live": "polite" })),
      el("section", { class: "card" }, el("h2", {}, "Low stock"), el("ul", { id: "low-stock", class: "feed" })),
    ),
  );
  renderKpis();
  renderFeed();
  renderLowStock();
}

// ---------- products ----------

let productQuery = { q: "", page: 1 };

function restockForm(id, suggested) {
  return el(
    "form",
    {
      class: "inline-form restock-form",
      onsubmit: async (e) => {
        e.preventDefault();
        const quantity = Number(e.target.quantity.value);
        if (!Number.isInteger(quantity) || quantity < 1) return notify("Restock quantity must be a whole number of at least 1.", "error");
        try {
          await api("POST", `/products/${encodeURIComponent(id)}/restock`, { quantity });
          notify(`Restocked ${quantity}.`);
          refreshStock(id);
        } catch (err) {
          notify(err.message, "error");
        }
      },
    },
    el("input", { name: "quantity", type: "number", min: 1, value: suggested, "aria-label": "Units to add", class: "narrow" }),
    el("button", { type: "submit", class: "secondary" }, "Restock"),
  );
}

function productForm(p) {
  const editing = !!p;
  const error = el("p", { class: "form-error", role: "alert" });
  const input = (name, label, attrs = {}) => [
    el("label", { for: `p-${name}` }, label),
    el("input", { id: `p-${name}`, name, ...attrs }),
  ];
  return el(
    "form",
    {
      class: "card form",
      id: editing ? "edit-product" : "create-product",
      onsubmit: async (e) => {
        e.preventDefault();
        const f = e.target;
        error.textContent = "";
        const cents = parseMoney(f.price.value, currency);
        if (cents === null) {
          error.textContent = `Price must be an amount such as 12.50 (${currency}).`;
          return;
        }
        const body = {
          name: f.name.value,
          description: f.description.value,
          category: f.category.value,
          brand: f.brand.value,
          price: { amount: cents, currency },
        };
        try {
          if (editing) {
            const now = await api("PATCH", `/products/${encodeURIComponent(p.id)}`, body);
            notify("Saved.");
            const row = document.querySelector(`#products tr[data-product="${CSS.escape(p.id)}"]`);
            if (row) row.replaceWith(productRow(now));
            refreshStock(p.id);
          } else {
            const created = await api("POST", "/products", { ...body, sku: f.sku.value, stock: Number(f.stock.value) });
            notify(`${created.name} created.`);
            // The list is a read model that trails a write by up to 100 ms.
            setTimeout(loadProducts, 300);
          }
          f.closest("#product-editor")?.replaceChildren();
        } catch (err) {
          error.textContent = err.message;
        }
      },
    },
    el("h2", {}, editing ? `Edit ${p.name}` : "New product"),
    editing ? null : input("sku", "SKU", { required: true }),
    input("name", "Name", { required: true, value: p ? p.name : "" }),
    el("label", { for: "p-description" }, "Description"),
    el("textarea", { id: "p-description", name: "description", rows: 3 }, p ? p.description : ""),
    input("category", "Category", { required: true, value: p ? p.category : "" }),
    input("brand", "Brand", { required: true, value: p ? p.brand : "" }),
    input("price", `Price (${currency})`, { required: true, inputmode: "decimal", value: p ? toDecimal(p.price) : "" }),
    editing ? null : input("stock", "Initial stock", { type: "number", min: 0, value: 0, required: true }),
    error,
    el("button", { type: "submit" }, editing ? "Save" : "Create"),
  );
}

/** Archives on the second click: the first asks for confirmation. */
async function archiveProduct(p, button) {
  if (button.dataset.confirm !== "yes") {
    button.dataset.confirm = "yes";
    button.textContent = "Really archive?";
    return;
  }
  try {
    await api("DELETE", `/products/${encodeURIComponent(p.id)}`);
    notify(`${p.name} archived.`);
    button.closest("tr")?.remove();
  } catch (e) {
    notify(e.message, "error");
  }
}

function productRow(p) {
  const edit = () => {
    const editor = document.getElementById("product-editor");
    editor.replaceChildren(productForm(p));
    editor.querySelector("input").focus();
  };
  return el(
    "tr",
    { "data-product": p.id },
    el("td", {}, p.name, el("div", { class: "hint" }, `${p.brand} · ${p.category}`)),
    el("td", {}, p.sku),
    el("td", {}, formatMoney(p.price)),
    el("td", { class: "available" }, p.stock.available),
    el("td", { class: "reserved" }, "…"),
    el("td", { class: "sold" }, "…"),
    el(
      "td",
      {},
      el("button", { type: "button", class: "secondary", onclick: edit }, "Edit"),
      " ",
      restockForm(p.id, 10),
      " ",
      el("button", { type: "button", class: "danger", onclick: (e) => archiveProduct(p, e.target) }, "Archive"),
    ),
  );
}

async function loadProducts() {
  const box = document.getElementById("products");
  if (!box) return;
  const params = new URLSearchParams({ per_page: 20, page: productQuery.page, sort: "name" });
  if (productQuery.q) params.set("q", productQuery.q);
  const list = await getOrShow(box, `/products?${params}`);
  if (!list) return;
  box.replaceChildren(
    el(
      "table",
      {},
      el("thead", {}, el("tr", {}, ["Product", "SKU", "Price", "Available", "Reserved", "Sold", ""].map((h) => el("th", {}, h)))),
      el(
        "tbody",
        {},
        list.items.map(productRow),
      ),
    ),
    el(
      "nav",
      { class: "pager" },
      el("button", { class: "secondary", disabled: productQuery.page <= 1, onclick: () => { productQuery.page--; loadProducts(); } }, "Previous"),
      el("span", {}, `Page ${productQuery.page} of ${Math.max(1, Math.ceil(list.total / 20))} · ${list.total} products`),
      el("button", { class: "secondary", disabled: productQuery.page * 20 >= list.total, onclick: () => { productQuery.page++; loadProducts(); } }, "Next"),
    ),
  );
  list.items.forEach((p) => refreshStock(p.id));
}

function showProducts() {
  main.append(
    el(
      "form",
      {
        class: "search",
        role: "search",
        onsubmit: (e) => { e.preventDefault(); productQuery = { q: e.target.q.value.trim(), page: 1 }; loadProducts(); },
      },
      el("label", { for: "product-search", class: "visually-hidden" }, "Search products"),
      el("input", { id: "product-search", name: "q", type: "search", placeholder: "Search products", value: productQuery.q }),
      el("button", { type: "submit" }, "Search"),
      el("button", { type: "button", class: "secondary", id: "new-product", onclick: () => document.getElementById("product-editor").replaceChildren(productForm(null)) }, "New product"),
    ),
    el("div", { id: "product-editor", class: "spaced" }),
    el("div", { id: "products" }),
  );
  loadProducts();
}

/** Fills a product row with its stock as the product itself says (the list is a read
 * model that may trail a write by a moment, and shows only what is available). */
async function refreshStock(id) {
  const row = document.querySelector(`#products tr[data-product="${CSS.escape(id)}"]`);
  if (!row) return;
  try {
    const p = await api("GET", `/products/${encodeURIComponent(id)}`);
    row.querySelector(".available").textContent = p.stock.available;
    row.querySelector(".reserved").textContent = p.stock.reserved ?? "";
    row.querySelector(".sold").textContent = p.stock.sold ?? "";
  } catch (e) {
    notify(e.message, "error");
  }
}

// ---------- orders ----------

let orderStatus = "";

async function orderAction(o, action, body) {
  try {
    const now = await api("POST", `/admin/orders/${encodeURIComponent(o.id)}/${action}`, body);
    notify(`Order ${o.id}: ${action.replace("-", " ")} done.`);
    // The list is a read model that may trail the write by a moment: show the answer.
    const row = document.querySelector(`#orders tr[data-order="${CSS.escape(o.id)}"]`);
    if (row) {
      const status = row.querySelector(".status");
      status.className = `status ${now.status}`;
      status.textContent = now.status.replace("_", " ");
      row.lastElementChild.replaceChildren(actionsFor({ ...o, status: now.status }));
    }
  } catch (e) {
    notify(e.message, "error");
  }
}

function actionsFor(o) {
  if (o.status === "paid") {
    return el(
      "form",
      {
        class: "inline-form",
        onsubmit: (e) => {
          e.preventDefault();
          orderAction(o, "ship", { carrier: e.target.carrier.value, tracking_number: e.target.tracking.value });
        },
      },
      el("input", { name: "carrier", required: true, placeholder: "Carrier", "aria-label": "Carrier" }),
      el("input", { name: "tracking", required: true, placeholder: "Tracking number", "aria-label": "Tracking number" }),
      el("button", { type: "submit" }, "Ship"),
    );
  }
  if (o.status === "shipped") return el("button", { type: "button", onclick: () => orderAction(o, "deliver") }, "Mark delivered");
  if (o.status === "returned") return el("button", { type: "button", onclick: () => orderAction(o, "approve-return") }, "Approve return & refund");
  return "";
}

let ordersTimer = null;
function loadOrders() {
  clearTimeout(ordersTimer);
  ordersTimer = setTimeout(fetchOrders, 150); // many sales at once: one reload
}

async function fetchOrders() {
  const box = document.getElementById("orders");
  if (!box) return;
  const params = new URLSearchParams({ per_page: 50 });
  if (orderStatus) params.set("status", orderStatus);
  const list = await getOrShow(box, `/admin/orders?${params}`);
  if (!list) return;
  box.replaceChildren(
    el(
      "table",
      {},
      el("thead", {}, el("tr", {}, ["Order", "Customer", "Placed", "Total", "Items", "Status", ""].map((h) => el("th", {}, h)))),
      el(
        "tbody",
        {},
        list.items.map((o) =>
          el(
            "tr",
            { "data-order": o.id },
            el("td", {}, o.id),
            el("td", {}, o.customer_id),
            el("td", {}, new Date(o.created_at).toLocaleString()),
            el("td", {}, formatMoney(o.total)),
            el("td", {}, o.items),
            el("td", { class: `status ${o.status}` }, o.status.replace("_", " ")),
            el("td", {}, actionsFor(o)),
          ),
        ),
      ),
    ),
    el("p", { class: "hint" }, `${list.total} orders`),
  );
}

function showOrders() {
  const statuses = ["", "pending_payment", "paid", "shipped", "delivered", "returned", "cancelled", "refunded"];
  main.append(
    el("label", { for: "order-status" }, "Status"),
    el(
      "select",
      { id: "order-status", onchange: (e) => { orderStatus = e.target.value; loadOrders(); } },
      statuses.map((s) => el("option", { value: s, selected: s === orderStatus }, s ? s.replace("_", " ") : "All")),
    ),
    el("div", { id: "orders", class: "spaced" }),
  );
  loadOrders();
}

// ---------- shell ----------

function render() {
  renderAccount();
  if (!isAdmin()) {
    signInForm(session() ? "This account is not an admin account. Sign in as an admin." : "");
    return;
  }
  const tabs = [["dashboard", "Dashboard"], ["products", "Products"], ["orders", "Orders"]];
  main.replaceChildren(
    el(
      "div",
      { class: "tabs", role: "tablist" },
      tabs.map(([id, label]) =>
        el("button", { type: "button", role: "tab", id: `tab-${id}`, "aria-selected": String(tab === id), onclick: () => { tab = id; render(); } }, label),
      ),
    ),
  );
  if (tab === "dashboard") showDashboard();
  else if (tab === "products") showProducts();
  else showOrders();
}

let watching = false;
window.addEventListener("session", () => {
  live.reauthenticate();
  if (isAdmin() && !watching) {
    watching = true;
    watchSales();
  }
  render();
});
window.addEventListener("resize", () => renderKpis());

(async () => {
  try {
    const list = await api("GET", "/products?per_page=1");
    if (list.items[0]) currency = list.items[0].price.currency;
  } catch {
    /* the default currency stands */
  }
  if (isAdmin()) {
    watching = true;
    watchSales();
  }
  render();
})();
