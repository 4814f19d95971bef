//! The console's front end, embedded at compile time from
//! `crates/certbound-broker/ui-dist/` (committed build output of `ui/`).

/// `index.html`: served for `/ui/` and every client-side route.
pub const INDEX_HTML: &[u8] = include_bytes!("../../../../ui-dist/index.html");

/// The files under `/ui/assets/`: (name, content type, bytes).
pub const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../../ui-dist/assets/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../../ui-dist/assets/app.css"),
    ),
];

/// The asset named `name` (a path under `assets/`).
pub fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, t, b)| (*t, *b))
}
