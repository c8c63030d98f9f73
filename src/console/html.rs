//! The console's HTML: one escaping helper every value goes through, the
//! page frame (navigation, who is looking, the logout form), and the
//! reading of form and query strings.

use std::collections::HashMap;

use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};

use crate::domain::Error;

/// `text` made safe inside HTML text and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `text` as a query-string value.
pub fn query_value(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

/// The fields of an `application/x-www-form-urlencoded` body or a query
/// string (a repeated field keeps its last value).
pub fn fields(encoded: &str) -> HashMap<String, String> {
    encoded
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(name), decode(value))
        })
        .collect()
}

/// Who is looking, as the frame shows it.
pub struct Viewer<'a> {
    /// The principal's name ("anonymous" on a server without an auth file).
    pub principal: &'a str,
    pub account: &'a str,
    /// The session's CSRF token (for the logout form); None: no session to
    /// end (a server without an auth file).
    pub logout_csrf: Option<&'a str>,
}

/// A whole page: `title`, the navigation, and `body` (already HTML).
pub fn page(title: &str, viewer: Option<&Viewer<'_>>, body: &str) -> String {
    let nav = match viewer {
        Some(viewer) => {
            let logout = viewer
                .logout_csrf
                .map(|csrf| {
                    format!(
                        r#"<form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" value="{}"><button type="submit" id="logout">Log out</button></form>"#,
                        escape(csrf)
                    )
                })
                .unwrap_or_default();
            format!(
                r#"<nav><a href="/">Keys &amp; aliases</a> <a href="/stream">Live changes</a> <a href="/audit">Audit log</a> <a href="/health">Health</a>
<span class="who">principal <b id="principal">{}</b>, account <b id="account">{}</b> {logout}</span></nav>"#,
                escape(viewer.principal),
                escape(viewer.account),
            )
        }
        None => String::new(),
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · aliasd</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{STYLE}</style></head>
<body><header><b>aliasd</b> console</header>
{nav}
<main><h1>{title}</h1>
{body}
</main></body></html>"#,
        title = escape(title),
    )
}

/// An error from the application, as a box on a page: its reason and
/// message.
pub fn error_box(error: &Error) -> String {
    format!(
        r#"<div class="error" role="alert"><b class="reason">{}</b>: <span class="message">{}</span></div>"#,
        escape(error.reason.as_str()),
        escape(&error.message)
    )
}

/// A note that something was done.
pub fn notice(text: &str) -> String {
    format!(
        r#"<div class="notice" role="status">{}</div>"#,
        escape(text)
    )
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222}\
header{background:#234;color:#fff;padding:.5em 1em}\
nav{padding:.5em 1em;background:#eef;display:flex;gap:1em;align-items:center}\
nav .who{margin-left:auto}main{padding:0 1em 2em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}\
th{background:#f4f4f8}code{font-size:.9em}.error{background:#fdd;border:1px solid #c33;padding:.5em;margin:.5em 0}\
.notice{background:#dfd;border:1px solid #3a3;padding:.5em;margin:.5em 0}form.inline{display:inline}\
fieldset{margin:.5em 0;max-width:48em}label{display:block;margin:.2em 0}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(
            escape(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
    }

    #[test]
    fn form_fields_are_decoded() {
        let fields = fields("name=alias%2Fa+b&csrf=x%3D&empty=&flag");
        assert_eq!(fields["name"], "alias/a b");
        assert_eq!(fields["csrf"], "x=");
        assert_eq!(fields["empty"], "");
        assert_eq!(fields["flag"], "");
    }
}
