//! The console's public pages: the sign-in form and the one-time link
//! confirmation, self-contained HTML (no script; their CSS is
//! `/ui/login.css`, so the CSP needs no `unsafe-inline`).

/// `/ui/login.css`.
pub const LOGIN_CSS: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;background:#f4f5f7;color:#1b1f24;margin:0}\
main{max-width:24rem;margin:4rem auto;background:#fff;border:1px solid #c9ced6;border-radius:8px;padding:2rem}\
h1{font-size:1.4rem;margin:0 0 1.5rem}\
label{display:block;font-weight:600;margin:1rem 0 .3rem}\
input{width:100%;box-sizing:border-box;padding:.55rem;border:1px solid #6b7480;border-radius:4px;font-size:1rem}\
input:focus,button:focus{outline:3px solid #0b5cad;outline-offset:2px}\
button{margin-top:1.5rem;width:100%;padding:.65rem;border:0;border-radius:4px;background:#0b5cad;color:#fff;font-size:1rem;font-weight:600;cursor:pointer}\
.error{background:#fdecea;border:1px solid #b3261e;color:#7a1712;padding:.6rem;border-radius:4px}\
p.hint{color:#4a525c;font-size:.9rem}\n";

/// HTML-escapes `s` for text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The text shown for a `?error=` code (unknown codes get a generic text,
/// so the page never echoes what a link put there).
pub fn error_text(code: &str) -> &'static str {
    match code {
        "credentials" => "Sign-in failed: unknown client or wrong secret.",
        "no_admin_scope" => "This client has no grant for the admin API (urn:certbound:admin).",
        "rate_limited" => "Too many sign-in attempts from this address; wait a minute.",
        "origin" => "The sign-in form was sent from another site; use this page.",
        "link_used" => {
            "This sign-in link was used already; ask for a new one (certbound ui-login)."
        }
        "link_expired" => "This sign-in link has expired; ask for a new one (certbound ui-login).",
        "link_unknown" => "This sign-in link is not valid; ask for a new one (certbound ui-login).",
        "signed_out" => "You are signed out.",
        "unavailable" => "The server could not check the sign-in; try again.",
        _ => "Sign-in failed.",
    }
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title}</title><link rel=\"stylesheet\" href=\"/ui/login.css\"></head>\
<body><main>{body}</main></body></html>\n",
        title = escape(title)
    )
}

/// The sign-in form, with the message of `error` when given.
pub fn login(error: Option<&str>) -> String {
    let message = error
        .map(|e| {
            format!(
                "<p class=\"error\" role=\"alert\">{}</p>",
                escape(error_text(e))
            )
        })
        .unwrap_or_default();
    page(
        "Sign in · certbound console",
        &format!(
            "<h1>certbound console</h1>{message}\
<form method=\"post\" action=\"/ui/login\">\
<label for=\"client_id\">Client id</label>\
<input id=\"client_id\" name=\"client_id\" autocomplete=\"username\" required autofocus>\
<label for=\"client_secret\">Client secret</label>\
<input id=\"client_secret\" name=\"client_secret\" type=\"password\" autocomplete=\"current-password\" required>\
<button type=\"submit\">Sign in</button></form>\
<p class=\"hint\">Use an admin client's credentials (the data directory's admin-client.json), \
or run <code>certbound ui-login</code> on the server for a one-time link.</p>"
        ),
    )
}

/// The confirmation page of a one-time link (a GET never consumes it).
pub fn link(token: &str, usable: bool) -> String {
    if !usable {
        return page(
            "Sign-in link · certbound console",
            &format!(
                "<h1>certbound console</h1><p class=\"error\" role=\"alert\">{}</p>\
<p><a href=\"/ui/login\">Sign in with client credentials</a></p>",
                escape(error_text("link_unknown"))
            ),
        );
    }
    page(
        "Sign-in link · certbound console",
        &format!(
            "<h1>certbound console</h1><p>Sign in with this one-time link? It works once.</p>\
<form method=\"post\" action=\"/ui/login/link\">\
<input type=\"hidden\" name=\"token\" value=\"{}\">\
<button type=\"submit\">Continue</button></form>",
            escape(token)
        ),
    )
}
