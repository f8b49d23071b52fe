//! Account bootstrap: the shop's admin account, made sure of at start (from the
//! configured admin email and password) and by `ecommesh create-admin`.

use crate::customer::{CustomerCommand, Role};
use crate::ids::customer_id;
use crate::passwords::{self, Hasher};
use crate::shop::Shop;

/// Why the admin account could not be made sure of.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("the admin password {0}")]
    WeakPassword(String),
    /// Someone registered the admin email with another password: promoting that account
    /// would hand the shop to whoever registered it.
    #[error("an account with the admin email {0} exists and its password is not the configured admin password: it was not made an admin; choose another admin email, or sign in to that account and set the configured password first")]
    NotTheOwner(String),
    /// A read or write did not go through (in a cluster: no quorum yet); worth retrying.
    #[error("{0}")]
    Unavailable(String),
}

/// Makes sure `email` has an admin account: creates it with `password` if missing; an
/// existing account is made an admin only if its password is `password` (whoever
/// registered the email otherwise keeps a customer account). Used at start
/// (ECOMMESH_ADMIN_*), before HTTP serves, and by `ecommesh create-admin`.
pub async fn ensure_admin(
    shop: &Shop,
    hasher: &Hasher,
    email: &str,
    password: &str,
) -> Result<&'static str, AdminError> {
    if let Some(why) = passwords::weakness(password) {
        return Err(AdminError::WeakPassword(why));
    }
    let unavailable = |e: &dyn std::fmt::Display| AdminError::Unavailable(e.to_string());
    let id = customer_id(email);
    let existing = shop
        .customers
        .read(id.clone())
        .await
        .map_err(|e| unavailable(&e))?
        .state;
    if existing.registered {
        if existing.role == Role::Admin {
            return Ok("exists");
        }
        let (password, hash) = (password.to_owned(), existing.password_hash.clone());
        let owner = hasher
            .run(move || passwords::verify(&password, &hash))
            .await
            .map_err(|e| unavailable(&e))?;
        if !owner {
            return Err(AdminError::NotTheOwner(email.to_owned()));
        }
        let cmd = CustomerCommand::SetRole { role: Role::Admin };
        shop.customers
            .execute(id, cmd, None)
            .await
            .map_err(|e| unavailable(&e))?;
        return Ok("promoted");
    }
    let password = password.to_owned();
    let password_hash = hasher
        .run(move || passwords::hash(&password))
        .await
        .map_err(|e| unavailable(&e))?;
    let cmd = CustomerCommand::Register {
        email: email.to_owned(),
        name: "Administrator".into(),
        password_hash,
        role: Role::Admin,
    };
    shop.customers
        .execute(id, cmd, None)
        .await
        .map_err(|e| AdminError::Unavailable(format!("cannot create the admin: {e}")))?;
    Ok("created")
}
