//! The storefront and the admin dashboard in a real Chromium (Selenium, from PyPI, with
//! the system's chromium and chromedriver; `.ci/run` installs all three). The scenarios
//! live in `tests/browser/e2e.py`; each saves a screenshot under `target/browser/`.

mod common;

use std::process::Command;

use common::temp;

#[test]
fn storefront_and_dashboard_work_live_in_a_real_browser() {
    for (tool, install) in [
        ("/usr/bin/chromium", "apt-get install chromium"),
        ("/usr/bin/chromedriver", "apt-get install chromium-driver"),
    ] {
        assert!(
            std::path::Path::new(tool).exists(),
            "{tool} is missing: {install} (.ci/run installs it)"
        );
    }
    let selenium = Command::new("python3")
        .args(["-c", "import selenium"])
        .status();
    assert!(
        selenium.is_ok_and(|s| s.success()),
        "selenium is missing: pip install selenium (.ci/run installs it)"
    );
    let (_tmp, data) = temp();
    let node = common::start_with_admin(&data, &[]);
    let shots = concat!(env!("CARGO_MANIFEST_DIR"), "/target/browser");
    let _ = std::fs::remove_dir_all(shots); // every screenshot checked below is from this run
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/e2e.py"))
        .args(["--base", &node.url("")])
        .args(["--shots", shots])
        .args(["--admin-email", common::ADMIN_EMAIL])
        .args(["--admin-password", common::ADMIN_PASSWORD])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}");
    assert!(
        out.status.success(),
        "browser scenarios failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        report.matches("\nok ").count() + report.starts_with("ok ") as usize,
        5
    );
    for name in [
        "sold_out_reaches_the_other_shopper",
        "cart_syncs_across_tabs",
        "dashboard_sees_the_sale",
        "full_flow",
        "admin_manages_catalog_and_orders",
    ] {
        let png = std::fs::read(format!("{shots}/{name}.png")).expect("a screenshot per scenario");
        assert_eq!(&png[1..4], b"PNG");
    }
}
