//! Ids derived from what a caller knows. Deriving an id makes the entity it names the
//! single writer of a uniqueness rule: two registrations of one email meet in one customer
//! entity, two products with one SKU in one product entity, and retries of one checkout
//! (one customer, one idempotency key) in one order entity, where the second is refused or
//! answered with the first's outcome.

use sha2::{Digest, Sha256};

/// The customer id of an email address; emails are compared case-insensitively.
pub fn customer_id(email: &str) -> String {
    let digest = Sha256::digest(format!(
        "ecommesh-customer:{}",
        email.trim().to_ascii_lowercase()
    ));
    format!("u_{}", &hex::encode(digest)[..24])
}

/// The product id of a SKU; SKUs are compared case-insensitively.
pub fn product_id(sku: &str) -> String {
    let digest = Sha256::digest(format!("ecommesh-product:{}", sku.trim().to_lowercase()));
    format!("p_{}", &hex::encode(digest)[..20])
}

/// The order id of a checkout: one per customer and idempotency key.
pub fn order_id(customer: &str, key: &str) -> String {
    format!(
        "o_{}",
        &hex::encode(Sha256::digest(format!("order:{customer}:{key}")))[..20]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_ids_ignore_case_and_surrounding_space() {
        assert_eq!(
            customer_id("Ada@Example.com "),
            customer_id("ada@example.com")
        );
        assert_ne!(
            customer_id("ada@example.com"),
            customer_id("bob@example.com")
        );
        assert_eq!(customer_id("a@b.io").len(), 26);
    }

    #[test]
    fn product_ids_ignore_the_case_of_the_sku() {
        assert_eq!(product_id(" TEE-01"), product_id("tee-01"));
        assert_ne!(product_id("tee-01"), product_id("tee-02"));
    }

    #[test]
    fn order_ids_are_per_customer_and_key() {
        assert_eq!(order_id("u_1", "k"), order_id("u_1", "k"));
        assert_ne!(order_id("u_1", "k"), order_id("u_2", "k"));
        assert_ne!(order_id("u_1", "k"), order_id("u_1", "k2"));
    }
}
