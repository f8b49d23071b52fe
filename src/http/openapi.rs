//! The OpenAPI 3.1 document of the whole API, generated from the handlers' and types'
//! annotations (utoipa), served at `/api/v1/openapi.json`.

use actix_web::HttpResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "EcomMesh API",
        description = "Commerce API of EcomMesh. Money is integer minor units with an ISO 4217 currency. \
                       Errors are RFC 9457 problem documents with a stable `code`. A 2xx on a write means it is on disk.",
    ),
    paths(
        super::ops::healthz,
        super::ops::readyz,
        super::ops::metrics,
        crate::http::auth::register,
        crate::http::auth::login,
        crate::http::auth::refresh,
        crate::http::auth::logout,
        crate::http::auth::me,
        super::products::list,
        super::products::get,
        super::products::create,
        super::products::update,
        super::products::restock,
        super::products::archive,
        super::carts::get_cart,
        super::carts::clear,
        super::carts::add_item,
        super::carts::set_quantity,
        super::carts::remove_item,
        crate::http::checkout::checkout,
        super::orders::list_own,
        super::orders::get,
        super::orders::cancel,
        super::orders::request_return,
        super::orders::list_all,
        super::orders::ship,
        super::orders::deliver,
        super::orders::approve_return,
        super::orders::sales_summary,
        super::cluster::status,
        super::cluster::join,
        super::cluster::remove,
    ),
    components(schemas(ecommesh_commerce::catalog::Sort)),
    modifiers(&Bearer),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "catalog", description = "Products and the searchable catalog"),
        (name = "cart", description = "The caller's cart"),
        (name = "checkout", description = "Buying the cart"),
        (name = "orders", description = "The caller's orders"),
        (name = "admin", description = "Order management and sales (admin role)"),
        (name = "operations", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .expect("the API document serializes")
    })
}

pub async fn serve() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_openapi_3_1_and_lists_every_route() {
        let doc: serde_json::Value = serde_json::from_str(super::document()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let paths = doc["paths"].as_object().unwrap();
        for p in [
            "/api/v1/checkout",
            "/api/v1/products/{id}",
            "/api/v1/cart/items",
            "/api/v1/admin/sales/summary",
            "/api/v1/auth/refresh",
        ] {
            assert!(paths.contains_key(p), "{p} missing");
        }
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
        assert!(doc["components"]["schemas"]["ProblemSchema"].is_object());
    }
}
