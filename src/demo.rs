//! The demo catalog seeded on first start: 300 products across categories and brands,
//! the same on every machine (generated from fixed word lists and a fixed-seed generator),
//! so that docs, screenshots and tests can name them.

use ecommesh_actors::EntityError;
use ecommesh_commerce::product::{ProductCommand, ProductDetails};
use ecommesh_commerce::{Currency, Money};

use crate::app::AppState;

const CATEGORIES: &[(&str, &[&str])] = &[
    (
        "shoes",
        &[
            "Trail Runner",
            "Road Racer",
            "Hiking Boot",
            "Court Sneaker",
            "Sandal",
            "Loafer",
        ],
    ),
    (
        "apparel",
        &[
            "Rain Jacket",
            "Merino Tee",
            "Fleece Hoodie",
            "Running Shorts",
            "Wool Socks",
            "Down Vest",
        ],
    ),
    (
        "kitchen",
        &[
            "Chef Knife",
            "Cast Iron Pan",
            "Pour-Over Kettle",
            "Stoneware Mug",
            "Cutting Board",
            "Spice Grinder",
        ],
    ),
    (
        "electronics",
        &[
            "Wireless Earbuds",
            "USB-C Charger",
            "Bluetooth Speaker",
            "E-Reader",
            "Smart Lamp",
            "Action Camera",
        ],
    ),
    (
        "outdoor",
        &[
            "Camping Tent",
            "Sleeping Bag",
            "Headlamp",
            "Water Filter",
            "Trekking Poles",
            "Daypack",
        ],
    ),
];
const BRANDS: &[&str] = &[
    "Acme",
    "Northwind",
    "Zephyr",
    "Ironwood",
    "Lumen",
    "Tidal",
    "Summit",
    "Quill",
    "Nimbus",
    "Orbit",
];
const ADJECTIVES: &[&str] = &[
    "Classic", "Pro", "Lite", "Ultra", "Everyday", "Eco", "Compact", "Deluxe", "Rugged", "Urban",
];

/// The demo products, in a fixed order.
pub fn products() -> Vec<(ProductDetails, u64)> {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        // xorshift64*: a fixed sequence, no dependency on a random source.
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut out = Vec::new();
    for (c, (category, nouns)) in CATEGORIES.iter().enumerate() {
        for (n, noun) in nouns.iter().enumerate() {
            for (a, adjective) in ADJECTIVES.iter().enumerate() {
                let brand = BRANDS[(c * 7 + n * 3 + a) % BRANDS.len()];
                let r = next();
                let price = 498 + (r % 300) as i64 * 100; // 4.98 .. 303.98
                let stock = match r % 10 {
                    0 => 0, // some sold out
                    1 => 3, // some nearly
                    _ => 10 + (r >> 8) % 190,
                };
                out.push((
                    ProductDetails {
                        sku: format!("DEMO-{:02}{:02}{:02}", c, n, a),
                        name: format!("{brand} {adjective} {noun}"),
                        description: format!(
                            "The {adjective} {noun} from {brand}: a demo product in {category}, built to show search, facets and live stock."
                        ),
                        category: category.to_string(),
                        brand: brand.to_string(),
                        price: Money::new(price, Currency::USD),
                        images: vec![],
                    },
                    stock,
                ));
            }
        }
    }
    out
}

/// Creates the demo products (each through its product entity, durably). Products that
/// exist already are left alone, so a seed interrupted by a crash completes on the next start.
pub async fn seed(node: &AppState) -> anyhow::Result<usize> {
    let mut created = 0;
    for wave in products().chunks(64) {
        let mut pending = Vec::new();
        for (details, stock) in wave {
            let id = ecommesh_commerce::ids::product_id(&details.sku);
            let cmd = ProductCommand::Create {
                details: details.clone(),
                initial_stock: *stock,
            };
            let products = node.shop.products.clone();
            pending.push(actix_web::rt::spawn(async move {
                products.execute(id, cmd, None).await
            }));
        }
        for p in pending {
            match p.await? {
                Ok(_) => created += 1,
                Err(EntityError::Rejected(_)) => {} // already there
                Err(e) => anyhow::bail!("seeding the demo catalog failed: {e}"),
            }
        }
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_demo_catalog_is_fixed_and_varied() {
        let a = super::products();
        assert_eq!(a.len(), 300);
        assert_eq!(a, super::products(), "deterministic");
        let skus: std::collections::BTreeSet<_> = a.iter().map(|(d, _)| d.sku.clone()).collect();
        assert_eq!(skus.len(), 300, "unique SKUs");
        assert!(a.iter().any(|(_, s)| *s == 0) && a.iter().any(|(_, s)| *s > 50));
        assert!(a.iter().all(|(d, _)| d.price.amount > 0));
        let brands: std::collections::BTreeSet<_> =
            a.iter().map(|(d, _)| d.brand.clone()).collect();
        assert_eq!(brands.len(), 10);
    }
}
