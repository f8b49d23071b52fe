"""End-to-end tests of the storefront and the admin dashboard in a real Chromium.

Run by tests/browser.rs against a node it started (the same `cargo test` as the rest):

    python3 tests/browser/e2e.py --base http://127.0.0.1:PORT --shots target/browser \
        --admin-email ... --admin-password ...

Each scenario saves a PNG of its final state in --shots. Exits non-zero if any fails.
"""

import argparse
import json
import os
import re
import sys
import time
import traceback
import urllib.request
import uuid

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

# How long a live change may take to show (the promise).
LIVE = 2.0
# How long a page may take to load or react to a click (not a promise under test: a
# cold Chromium on a loaded CI machine is slow, and a short wait made these flaky).
PAGE = 15.0


class Shop:
    """The REST API, for setting the stage (not for what is being tested)."""

    def __init__(self, base):
        self.base = base

    def call(self, method, path, body=None, token=None, headers=None):
        req = urllib.request.Request(self.base + "/api/v1" + path, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", "Bearer " + token)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        data = json.dumps(body).encode() if body is not None else None
        with urllib.request.urlopen(req, data, timeout=10) as r:
            text = r.read()
            return json.loads(text) if text else None

    def login(self, email, password):
        return self.call("POST", "/auth/login", {"email": email, "password": password})

    def register(self, email):
        return self.call("POST", "/auth/register", {"email": email, "password": "password-1", "name": "Shopper"})

    def product(self, admin, sku, stock, cents=1500, name=None):
        return self.call(
            "POST",
            "/products",
            {"sku": sku, "name": name or f"Browser {sku}", "category": "e2e", "brand": "Testbrand",
             "price": {"amount": cents, "currency": "USD"}, "stock": stock},
            admin,
        )["id"]

    def checkout(self, token, card="tok_visa"):
        address = {"name": "Ada Lovelace", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}
        return self.call("POST", "/checkout", {"payment": {"token": card}, "shipping_address": address}, token,
                         {"Idempotency-Key": str(uuid.uuid4())})


def browser():
    o = Options()
    o.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000",
              "--disable-background-timer-throttling", "--disable-renderer-backgrounding"]:
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")), options=o)
    d.implicitly_wait(0)
    return d


def wait(d, seconds, cond, what):
    # The pages re-render lists and forms as live updates arrive: an element found a
    # moment ago may be replaced before it is read (stale); look again.
    try:
        return WebDriverWait(d, seconds, poll_frequency=0.05,
                             ignored_exceptions=[NoSuchElementException, StaleElementReferenceException]).until(cond)
    except Exception:
        raise AssertionError(f"within {seconds} s: {what}") from None


def stable(action):
    """Runs `action` again if an element it used was replaced by a re-render meanwhile."""
    deadline = time.time() + PAGE
    while True:
        try:
            return action()
        except StaleElementReferenceException:
            if time.time() > deadline:
                raise
            time.sleep(0.05)


def click(d, by, value):
    stable(lambda: d.find_element(by, value).click())


def choose(d, by, value, option):
    stable(lambda: Select(d.find_element(by, value)).select_by_value(option))


def text_of(d, css):
    return d.find_element(By.CSS_SELECTOR, css).text


def signed_in(d, base, session):
    """Opens the shop with a session already in localStorage (sign-in is tested in flow 4)."""
    d.get(base + "/")
    d.execute_script("localStorage.setItem('ecommesh.session', arguments[0])", json.dumps(session))
    d.refresh()
    wait(d, PAGE, lambda d: d.find_elements(By.ID, "signed-in-as"), "the page shows the session")


def admin_browser(ctx):
    """A browser signed in to the admin dashboard through its form."""
    d = browser()
    ctx.drivers.append(d)
    d.get(ctx.base + "/admin")
    wait(d, PAGE, lambda d: d.find_elements(By.ID, "email"), "the admin sign-in form shows")
    d.find_element(By.ID, "email").send_keys(ctx.admin_email)
    d.find_element(By.ID, "password").send_keys(ctx.admin_password)
    click(d, By.ID, "signin-submit")
    return d


def live(d):
    wait(d, PAGE, lambda d: text_of(d, "#live-status") == "Live", "the page is connected live")


def js_errors(d):
    # Failed requests are logged too; the API's 4xx answers are expected in some flows.
    return [e["message"] for e in d.get_log("browser") if e["level"] == "SEVERE" and e.get("source") != "network"]


def cents(text):
    return int(re.sub(r"[^0-9]", "", text) or 0)


def fill_checkout(d, card):
    stable(lambda: fill_checkout_once(d, card))


def fill_checkout_once(d, card):
    for field, value in [("fullname", "Ada Lovelace"), ("line1", "1 Main St"), ("city", "Springfield"), ("postal", "12345")]:
        el = d.find_element(By.ID, field)
        el.clear()
        el.send_keys(value)
    choose(d, By.ID, "card", card)
    click(d, By.ID, "place-order")


# ---------------------------------------------------------------- scenarios

def sold_out_reaches_the_other_shopper(ctx):
    """Two shoppers on one product; one buys the last units; the other's badge says sold
    out within 2 s without a reload, and its add-to-cart button is disabled."""
    shop, base = ctx.shop, ctx.base
    pid = shop.product(ctx.admin, "last-units", 2)
    a, b = browser(), browser()
    ctx.drivers += [a, b]
    signed_in(a, base, shop.register("alice@e2e.test"))
    signed_in(b, base, shop.register("bob@e2e.test"))
    for d in (a, b):
        d.get(f"{base}/#/product/{pid}")
        live(d)
        wait(d, PAGE, lambda d: text_of(d, ".stock-badge") == "2 left", "the badge shows 2 left")
    qty = a.find_element(By.ID, "qty")
    qty.clear()
    qty.send_keys("2")
    a.find_element(By.ID, "add-to-cart").click()
    wait(a, PAGE, lambda d: d.find_element(By.ID, "cart-count").text == "2", "alice's cart holds 2")
    a.get(f"{base}/#/checkout")
    fill_checkout(a, "tok_visa")
    bought = time.monotonic()
    wait(a, PAGE, lambda d: "/orders/" in d.current_url, "alice's order is placed")
    wait(b, LIVE, lambda d: text_of(d, ".stock-badge") == "Sold out", "bob's badge says Sold out")
    took = time.monotonic() - bought
    assert not b.find_element(By.ID, "add-to-cart").is_enabled(), "bob's add-to-cart is disabled"
    assert b.execute_script("return performance.getEntriesByType('navigation').length") == 1, "no reload"
    ctx.note(f"sold out shown {took:.2f} s after the purchase (including checkout)")
    return b


def cart_syncs_across_tabs(ctx):
    """One shopper, two tabs: adding in one updates the cart drawer in the other."""
    shop, base = ctx.shop, ctx.base
    pid = shop.product(ctx.admin, "two-tabs", 10, name="Two Tab Lamp")
    d = browser()
    ctx.drivers.append(d)
    signed_in(d, base, shop.register("tabs@e2e.test"))
    d.get(f"{base}/#/product/{pid}")
    live(d)
    first = d.current_window_handle
    d.switch_to.new_window("tab")
    d.get(f"{base}/#/")
    live(d)
    click(d, By.ID, "cart-button")
    wait(d, PAGE, lambda d: d.find_elements(By.ID, "cart-empty"), "the drawer shows an empty cart")
    second = d.current_window_handle
    d.switch_to.window(first)
    qty = d.find_element(By.ID, "qty")
    qty.clear()
    qty.send_keys("3")
    click(d, By.ID, "add-to-cart")
    added = time.monotonic()
    d.switch_to.window(second)
    wait(d, LIVE, lambda d: d.find_element(By.ID, "cart-count").text == "3", "the other tab's count says 3")
    wait(d, LIVE, lambda d: "Two Tab Lamp" in d.find_element(By.ID, "cart-lines").text, "the drawer lists the lamp")
    ctx.note(f"other tab updated {time.monotonic() - added:.2f} s after the add")
    # And back: removing in the drawer empties the first tab's count.
    click(d, By.XPATH, "//div[@id='cart-lines']//button[text()='Remove']")
    d.switch_to.window(first)
    wait(d, LIVE, lambda d: d.find_element(By.ID, "cart-count").text == "0", "the first tab's count is back to 0")
    d.switch_to.window(second)
    return d


def dashboard_sees_the_sale(ctx):
    """An admin dashboard is open while a shopper checks out: the sale appears in the feed
    and the revenue figure rises within 2 s."""
    shop, base = ctx.shop, ctx.base
    pid = shop.product(ctx.admin, "dash-sale", 50, cents=4250, name="Dashboard Drone")
    d = admin_browser(ctx)
    wait(d, PAGE, lambda d: d.find_elements(By.ID, "kpi-revenue"), "the dashboard opens")
    live(d)
    before = cents(text_of(d, "#kpi-revenue"))
    buyer = shop.register("dash@e2e.test")["access_token"]
    shop.call("POST", "/cart/items", {"product_id": pid, "quantity": 2}, buyer)
    order = shop.checkout(buyer)
    paid = time.monotonic()
    wait(d, LIVE, lambda d: order["id"] in d.find_element(By.ID, "sales-feed").text, "the sale is in the feed")
    wait(d, LIVE, lambda d: cents(text_of(d, "#kpi-revenue")) >= before + 8500, "revenue rose by the order total")
    ctx.note(f"sale shown {time.monotonic() - paid:.2f} s after the checkout returned")
    wait(d, 3, lambda d: "Dashboard Drone" in text_of(d, "#top-products"), "the product is among the top products")
    return d


def full_flow(ctx):
    """Sign up, search, filter, add to cart, check out with tok_visa, see the order; a
    declined card shows a clear message."""
    shop, base = ctx.shop, ctx.base
    shop.product(ctx.admin, "flow-kettle", 20, cents=3999, name="Zebra Flow Kettle")
    shop.product(ctx.admin, "flow-mug", 20, cents=999, name="Zebra Flow Mug")
    d = browser()
    ctx.drivers.append(d)
    d.get(base + "/#/signup")
    wait(d, PAGE, lambda d: d.find_elements(By.ID, "signup-submit"), "the sign-up form shows")
    d.find_element(By.ID, "name").send_keys("Flo Shopper")
    d.find_element(By.ID, "email").send_keys("flo@e2e.test")
    d.find_element(By.ID, "password").send_keys("password-123")
    click(d, By.ID, "signup-submit")
    wait(d, PAGE, lambda d: d.find_elements(By.ID, "signed-in-as"), "signed in after sign-up")
    live(d)
    # Search, then narrow down with the category facet.
    q = d.find_element(By.ID, "q")
    q.send_keys("zebra flow")
    q.submit()
    wait(d, PAGE, lambda d: text_of(d, "#result-count") == "2 products", "the search finds both zebra products")
    choose(d, By.ID, "f-category", "e2e")
    wait(d, PAGE, lambda d: "category=e2e" in d.current_url, "the category filter applies")
    choose(d, By.ID, "f-sort", "price_desc")
    wait(d, PAGE, lambda d: d.find_elements(By.CSS_SELECTOR, ".product-card h3")[0].text == "Zebra Flow Kettle"
         and "sort=price_desc" in d.current_url, "the dearest comes first")
    click(d, By.LINK_TEXT, "Zebra Flow Kettle")
    wait(d, PAGE, lambda d: text_of(d, "#product-name") == "Zebra Flow Kettle", "the product page opens")
    wait(d, PAGE, lambda d: d.find_element(By.ID, "add-to-cart").is_enabled(), "it can be added")
    click(d, By.ID, "add-to-cart")
    wait(d, PAGE, lambda d: d.find_element(By.ID, "cart-count").text == "1", "the cart holds it")
    click(d, By.ID, "cart-button")
    wait(d, PAGE, lambda d: "$39.99" in text_of(d, "#cart-total"), "the drawer shows the total")
    click(d, By.ID, "go-checkout")
    wait(d, PAGE, lambda d: d.find_elements(By.ID, "checkout-form"), "the checkout form opens")
    fill_checkout(d, "tok_visa")
    wait(d, PAGE, lambda d: "/orders/" in d.current_url, "the order page opens")
    wait(d, PAGE, lambda d: text_of(d, ".order-status").lower() == "paid", "the order shows as paid")
    assert "Zebra Flow Kettle" in text_of(d, "#order-detail"), "the order lists the kettle by name"
    # A declined card: a clear message, and no order.
    d.get(base + "/#/")
    d.find_element(By.ID, "q").send_keys("zebra mug")
    d.find_element(By.ID, "q").submit()
    wait(d, PAGE, lambda d: d.find_elements(By.LINK_TEXT, "Zebra Flow Mug"), "the mug is found")
    click(d, By.LINK_TEXT, "Zebra Flow Mug")
    wait(d, PAGE, lambda d: d.find_element(By.ID, "add-to-cart").is_enabled(), "the mug can be added")
    click(d, By.ID, "add-to-cart")
    wait(d, PAGE, lambda d: d.find_element(By.ID, "cart-count").text == "1", "the cart holds the mug")
    d.get(base + "/#/checkout")
    fill_checkout(d, "tok_chargeDeclined")
    msg = wait(d, PAGE, lambda d: d.find_element(By.ID, "checkout-error").text, "an error is shown")
    assert "declined" in msg.lower(), f"the message says the card was declined: {msg!r}"
    assert "/checkout" in d.current_url, "still on the checkout page"
    ctx.note(f"declined message: {msg!r}")
    return d


def admin_manages_catalog_and_orders(ctx):
    """The admin restocks, edits and creates a product, then ships and delivers an order;
    each change shows at once, though the lists behind them are read models."""
    shop, base = ctx.shop, ctx.base
    pid = shop.product(ctx.admin, "adm-lamp", 3, name="Admin Test Lamp")
    buyer = shop.register("adm@e2e.test")["access_token"]
    shop.call("POST", "/cart/items", {"product_id": pid, "quantity": 1}, buyer)
    order = shop.checkout(buyer)["id"]
    d = admin_browser(ctx)
    wait(d, PAGE, lambda d: d.find_elements(By.ID, "tab-products"), "the dashboard opens")
    click(d, By.ID, "tab-products")
    wait(d, PAGE, lambda d: d.find_element(By.ID, "product-search").is_displayed(), "the products tab opens")
    d.find_element(By.ID, "product-search").send_keys("Admin Test Lamp\n")
    rows = "#products tr[data-product]"
    wait(d, PAGE, lambda d: len(d.find_elements(By.CSS_SELECTOR, rows)) == 1, "the search finds the lamp")
    qty = d.find_element(By.CSS_SELECTOR, rows + " .restock-form input")
    qty.clear()
    qty.send_keys("7")
    click(d, By.CSS_SELECTOR, rows + " .restock-form button")
    wait(d, PAGE, lambda d: text_of(d, rows + " .available") == "9", "2 left + 7 restocked = 9 available")
    assert text_of(d, rows + " .sold") == "1", "one sold"
    click(d, By.XPATH, "//tr[@data-product]//button[text()='Edit']")
    price = d.find_element(By.ID, "p-price")
    price.clear()
    price.send_keys("12.34")
    click(d, By.CSS_SELECTOR, "#edit-product button[type=submit]")
    wait(d, PAGE, lambda d: "$12.34" in text_of(d, "#products"), "the new price shows")
    click(d, By.ID, "new-product")
    for field, value in [("p-sku", "adm-new"), ("p-name", "Brand New Lamp"), ("p-category", "lamps"),
                         ("p-brand", "Acme"), ("p-price", "5.5"), ("p-stock", "4")]:
        e = d.find_element(By.ID, field)
        e.clear()
        e.send_keys(value)
    click(d, By.CSS_SELECTOR, "#create-product button[type=submit]")
    wait(d, PAGE, lambda d: "Brand New Lamp created." in text_of(d, "#messages"), "the product is created")
    click(d, By.ID, "tab-orders")
    row = f"tr[data-order='{order}']"
    wait(d, PAGE, lambda d: d.find_elements(By.CSS_SELECTOR, row), "the order is listed")
    d.find_element(By.CSS_SELECTOR, row + " input[name=carrier]").send_keys("UPS")
    d.find_element(By.CSS_SELECTOR, row + " input[name=tracking]").send_keys("1Z999")
    click(d, By.XPATH, f"//tr[@data-order='{order}']//button[text()='Ship']")
    wait(d, PAGE, lambda d: text_of(d, row + " .status").lower() == "shipped", "the order is shipped")
    click(d, By.XPATH, f"//tr[@data-order='{order}']//button[text()='Mark delivered']")
    wait(d, PAGE, lambda d: text_of(d, row + " .status").lower() == "delivered", "the order is delivered")
    created = shop.call("GET", "/products?q=brand+new+lamp", None, ctx.admin)
    assert created["items"] and created["items"][0]["price"]["amount"] == 550, created
    return d


SCENARIOS = [sold_out_reaches_the_other_shopper, cart_syncs_across_tabs, dashboard_sees_the_sale, full_flow,
             admin_manages_catalog_and_orders]


class Context:
    def __init__(self, args):
        self.base = args.base.rstrip("/")
        self.shop = Shop(self.base)
        self.admin_email = args.admin_email
        self.admin_password = args.admin_password
        self.admin = self.shop.login(args.admin_email, args.admin_password)["access_token"]
        self.drivers = []
        self.notes = []

    def note(self, text):
        self.notes.append(text)

    def close(self):
        for d in self.drivers:
            try:
                d.quit()
            except Exception:
                pass
        self.drivers = []


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True)
    p.add_argument("--shots", required=True)
    p.add_argument("--admin-email", required=True)
    p.add_argument("--admin-password", required=True)
    p.add_argument("--only", default="")
    args = p.parse_args()
    os.makedirs(args.shots, exist_ok=True)
    failed = []
    for scenario in SCENARIOS:
        if args.only and args.only not in scenario.__name__:
            continue
        ctx = Context(args)
        started = time.monotonic()
        shot = os.path.join(args.shots, scenario.__name__ + ".png")
        try:
            final = scenario(ctx)
            final.save_screenshot(shot)
            errors = [e for d in ctx.drivers for e in js_errors(d)]
            assert not errors, f"JavaScript errors: {errors}"
            print(f"ok   {scenario.__name__} ({time.monotonic() - started:.1f} s) {'; '.join(ctx.notes)}")
        except Exception as e:
            failed.append(scenario.__name__)
            for i, d in enumerate(ctx.drivers):
                try:
                    d.save_screenshot(shot.replace(".png", f"-failed-{i}.png"))
                except Exception:
                    pass
            print(f"FAIL {scenario.__name__}: {e}")
            traceback.print_exc()
        finally:
            ctx.close()
    print(f"screenshots in {args.shots}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
