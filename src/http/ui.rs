//! The browser UI: the storefront at `/` and the admin dashboard at `/admin`, plain
//! HTML, CSS and JavaScript modules compiled into the binary (no build step, no CDN).

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use super::errors::ApiError;

struct Asset {
    path: &'static str,
    mime: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($path:literal, $mime:literal) => {
        Asset {
            path: $path,
            mime: $mime,
            body: include_str!(concat!("../../web/", $path)),
        }
    };
}

static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("admin.html", "text/html; charset=utf-8"),
    asset!("css/app.css", "text/css; charset=utf-8"),
    asset!("js/api.js", "text/javascript; charset=utf-8"),
    asset!("js/live.js", "text/javascript; charset=utf-8"),
    asset!("js/store.js", "text/javascript; charset=utf-8"),
    asset!("js/admin.js", "text/javascript; charset=utf-8"),
    asset!("js/chart.js", "text/javascript; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
];

/// Same-origin only: scripts, styles, API calls and the websocket all come from here.
const CSP: &str = "default-src 'self'; img-src 'self' data: https:; connect-src 'self'; \
                   object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(|| async { page("index.html") }))
        .route("/admin", web::get().to(|| async { page("admin.html") }))
        .route(
            "/favicon.ico",
            web::get().to(|| async { page("favicon.svg") }),
        )
        .route("/assets/{path:.+}", web::get().to(asset));
}

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

fn serve(a: &Asset) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(a.mime)
        // Small files that change with the binary: always revalidate.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .body(a.body)
}

fn page(name: &str) -> HttpResponse {
    serve(find(name).expect("pages are embedded"))
}

async fn asset(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let path = path.into_inner();
    find(&path)
        .filter(|a| !a.path.ends_with(".html"))
        .map(serve)
        .ok_or_else(|| ApiError::not_found(format!("no asset {path}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_a_page_imports_is_embedded() {
        for a in ASSETS {
            for line in a.body.lines() {
                let Some(rest) = line.split(" from \"./").nth(1) else {
                    continue;
                };
                let module = rest.split('"').next().unwrap();
                assert!(
                    find(&format!("js/{module}")).is_some(),
                    "{} imports {module}, which is not embedded",
                    a.path
                );
            }
            for src in a.body.split("\"/assets/").skip(1) {
                let path = src.split('"').next().unwrap();
                assert!(
                    find(path).is_some(),
                    "{} links {path}, not embedded",
                    a.path
                );
            }
        }
    }
}
