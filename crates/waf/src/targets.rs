//! What a request carries, taken apart into the values the rules inspect.

use std::borrow::Cow;

use crate::Request;
use crate::decode;

/// Where a value came from; rules say which kinds they inspect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TargetKind {
    /// The decoded path.
    Path,
    /// An argument's value: query, form body, JSON string, multipart field, XML value.
    Arg,
    /// An argument's name (query, form, JSON key, multipart field name).
    ArgName,
    /// A cookie's value or name.
    Cookie,
    /// `User-Agent` or `Referer`: free text a client controls and applications log.
    UserText,
    /// Any other header's value.
    Header,
    /// An uploaded file's name (multipart `filename`, `X-Filename`).
    FileName,
}

/// One value to inspect.
#[derive(Clone, Debug)]
pub struct Target<'a> {
    /// Its kind.
    pub kind: TargetKind,
    /// Its place (`arg`, `json`, `cookie`, `header`, …) and name.
    pub place: &'static str,
    /// The argument, cookie or header name, or the JSON pointer.
    pub name: Cow<'a, str>,
    /// The decoded value.
    pub value: Cow<'a, str>,
}

impl Target<'_> {
    /// `place:name` (`arg:q`, `json:/memo`), or the place alone when it has no name.
    pub fn location(&self) -> String {
        if self.name.is_empty() {
            self.place.to_owned()
        } else {
            format!("{}:{}", self.place, self.name)
        }
    }
}

/// A request taken apart.
pub struct Extracted<'a> {
    /// The decoded path (exclusions are matched against it).
    pub path: Cow<'a, str>,
    /// Values to inspect.
    pub targets: Vec<Target<'a>>,
    /// Rule ids about the request's framing itself (smuggling signs, bad escapes).
    pub framing: Vec<&'static str>,
    /// Decoded bytes taken for inspection.
    pub inspected_bytes: usize,
    /// Whether the cap left something out.
    pub truncated: bool,
}

/// Headers whose values are free text a client writes (CRS inspects these for injections).
const USER_TEXT_HEADERS: [&str; 2] = ["user-agent", "referer"];
/// Headers that are structure, not content: inspected only by the framing checks.
const STRUCTURAL_HEADERS: [&str; 8] = [
    "host",
    "content-length",
    "content-type",
    "accept",
    "accept-encoding",
    "accept-language",
    "connection",
    "authorization",
];
/// How deep a JSON body is walked.
const JSON_DEPTH_MAX: usize = 64;

struct Collector<'a> {
    targets: Vec<Target<'a>>,
    budget: usize,
    used: usize,
    truncated: bool,
}

impl<'a> Collector<'a> {
    fn push(
        &mut self,
        kind: TargetKind,
        place: &'static str,
        name: Cow<'a, str>,
        value: Cow<'a, str>,
    ) {
        if value.is_empty() {
            return;
        }
        let room = self.budget - self.used;
        let value = if value.len() <= room {
            value
        } else {
            self.truncated = true;
            let mut end = room;
            while !value.is_char_boundary(end) {
                end -= 1;
            }
            if end == 0 {
                return;
            }
            Cow::Owned(value[..end].to_owned())
        };
        self.used += value.len();
        self.targets.push(Target {
            kind,
            place,
            name,
            value,
        });
    }

    /// `name=value&…` pairs (a query or a form body).
    fn pairs(&mut self, s: &'a str, place: &'static str) {
        for pair in s.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode::url(name, true);
            let value = decode::url(value, true);
            self.push(
                TargetKind::ArgName,
                "arg-name",
                Cow::Borrowed(""),
                name.clone(),
            );
            self.push(TargetKind::Arg, place, name, value);
        }
    }
}

/// Takes `request` apart, inspecting at most `budget` decoded bytes.
pub fn extract<'a>(request: &Request<'a>, budget: usize) -> Extracted<'a> {
    let mut c = Collector {
        targets: Vec::new(),
        budget,
        used: 0,
        truncated: false,
    };
    let mut framing = Vec::new();
    let (raw_path, query) = request
        .target
        .split_once('?')
        .unwrap_or((request.target, ""));
    if decode::has_bad_escape(request.target) {
        framing.push("920220");
    }
    if request.target.bytes().any(|b| b == 0) || request.target.contains("%00") {
        framing.push("920270");
    }
    let path = decode::url(raw_path, false);
    c.push(TargetKind::Path, "path", Cow::Borrowed(""), path.clone());
    c.pairs(query, "arg");

    let mut content_lengths = 0;
    let mut transfer_encoding = None;
    for &(name, value) in request.headers {
        let lower = name.to_ascii_lowercase();
        if name.contains(['\r', '\n']) || value.contains(['\r', '\n']) {
            framing.push("921140");
        }
        match lower.as_str() {
            "content-length" => content_lengths += 1,
            "transfer-encoding" => transfer_encoding = Some(value),
            "cookie" => {
                for cookie in value.split(';') {
                    let (n, v) = cookie.trim().split_once('=').unwrap_or((cookie.trim(), ""));
                    c.push(
                        TargetKind::Cookie,
                        "cookie-name",
                        Cow::Borrowed(""),
                        decode::url(n, false),
                    );
                    c.push(
                        TargetKind::Cookie,
                        "cookie",
                        Cow::Borrowed(n),
                        decode::url(v, false),
                    );
                }
                continue;
            }
            "x-filename" | "x_filename" | "x-file-name" => {
                c.push(
                    TargetKind::FileName,
                    "header",
                    Cow::Owned(lower.clone()),
                    Cow::Borrowed(value),
                );
            }
            _ => {}
        }
        let kind = if USER_TEXT_HEADERS.contains(&lower.as_str()) {
            TargetKind::UserText
        } else if STRUCTURAL_HEADERS.contains(&lower.as_str()) {
            continue;
        } else {
            TargetKind::Header
        };
        c.push(kind, "header", Cow::Owned(lower), decode::url(value, false));
    }
    if content_lengths > 1 || (content_lengths > 0 && transfer_encoding.is_some()) {
        framing.push("921170");
    }
    if transfer_encoding.is_some_and(|te| !te.trim().eq_ignore_ascii_case("chunked")) {
        framing.push("921180");
    }

    if !request.body.is_empty() {
        body(&mut c, request);
    }
    Extracted {
        path,
        inspected_bytes: c.used,
        truncated: c.truncated,
        targets: c.targets,
        framing,
    }
}

fn body<'a>(c: &mut Collector<'a>, request: &Request<'a>) {
    let content_type = request
        .header("content-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    // `application/octet-stream` is the ledger's binary batch encoding: numbers and ids, no
    // text a rule could read — random bytes would only trip rules by chance. Services parse
    // nothing but JSON and that encoding, so JSON sent under this type is inspected as JSON.
    if content_type.starts_with("application/octet-stream") {
        if let Ok(text) = std::str::from_utf8(request.body)
            && text.trim_start().starts_with(['{', '['])
            && let Ok(value) = serde_json::from_str::<serde_json::Value>(text)
        {
            json(c, &value, &mut String::new(), 0);
        }
        return;
    }
    let text = String::from_utf8_lossy(request.body);
    let text: &'a str = match text {
        Cow::Borrowed(s) => s,
        // Not UTF-8: inspect what decodes (the replacement characters stand for the rest).
        Cow::Owned(s) => {
            c.push(TargetKind::Arg, "body", Cow::Borrowed(""), Cow::Owned(s));
            return;
        }
    };
    let trimmed = text.trim_start();
    if content_type.contains("json") || (content_type.is_empty() && trimmed.starts_with(['{', '[']))
    {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(value) => json(c, &value, &mut String::new(), 0),
            Err(_) => c.push(
                TargetKind::Arg,
                "body",
                Cow::Borrowed(""),
                Cow::Borrowed(text),
            ),
        }
    } else if content_type.starts_with("multipart/form-data") {
        multipart(c, text, &content_type);
    } else if content_type.contains("xml") || trimmed.starts_with("<?xml") {
        xml(c, text);
    } else if content_type.starts_with("application/x-www-form-urlencoded")
        || content_type.is_empty()
    {
        c.pairs(text, "body");
    } else {
        c.push(
            TargetKind::Arg,
            "body",
            Cow::Borrowed(""),
            Cow::Borrowed(text),
        );
    }
}

fn json<'a>(c: &mut Collector<'a>, value: &serde_json::Value, pointer: &mut String, depth: usize) {
    use serde_json::Value;
    if depth > JSON_DEPTH_MAX {
        c.truncated = true;
        return;
    }
    match value {
        Value::String(s) => c.push(
            TargetKind::Arg,
            "json",
            Cow::Owned(pointer.clone()),
            Cow::Owned(s.clone()),
        ),
        Value::Number(n) => c.push(
            TargetKind::Arg,
            "json",
            Cow::Owned(pointer.clone()),
            Cow::Owned(n.to_string()),
        ),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                json(c, item, pointer, depth + 1);
                pointer.truncate(len);
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                c.push(
                    TargetKind::ArgName,
                    "json-key",
                    Cow::Owned(pointer.clone()),
                    Cow::Owned(key.clone()),
                );
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                json(c, item, pointer, depth + 1);
                pointer.truncate(len);
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}

fn multipart<'a>(c: &mut Collector<'a>, text: &'a str, content_type: &str) {
    let Some(boundary) = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .filter(|b| !b.is_empty())
    else {
        c.push(
            TargetKind::Arg,
            "body",
            Cow::Borrowed(""),
            Cow::Borrowed(text),
        );
        return;
    };
    // The boundary was lower-cased with the content type; match it case-insensitively.
    let delimiter = format!("--{boundary}");
    let lower = text.to_ascii_lowercase();
    let mut starts: Vec<usize> = lower.match_indices(&delimiter).map(|(i, _)| i).collect();
    starts.push(text.len());
    for window in starts.windows(2) {
        let part = &text[window[0] + delimiter.len()..window[1]];
        let Some((head, content)) = part
            .split_once("\r\n\r\n")
            .or_else(|| part.split_once("\n\n"))
        else {
            continue;
        };
        let content = content
            .strip_suffix("\r\n")
            .or_else(|| content.strip_suffix('\n'))
            .unwrap_or(content);
        let mut name = "";
        for line in head.lines() {
            let Some((header, value)) = line.split_once(':') else {
                continue;
            };
            if !header.trim().eq_ignore_ascii_case("content-disposition") {
                continue;
            }
            for param in value.split(';').map(str::trim) {
                if let Some(n) = param.strip_prefix("name=") {
                    name = n.trim_matches('"');
                    c.push(
                        TargetKind::ArgName,
                        "arg-name",
                        Cow::Borrowed(""),
                        Cow::Borrowed(name),
                    );
                } else if let Some(f) = param.strip_prefix("filename=") {
                    c.push(
                        TargetKind::FileName,
                        "filename",
                        Cow::Borrowed(name),
                        Cow::Borrowed(f.trim_matches('"')),
                    );
                }
            }
        }
        c.push(
            TargetKind::Arg,
            "part",
            Cow::Borrowed(name),
            Cow::Borrowed(content),
        );
    }
}

/// XML: each attribute value and each text node, references decoded.
fn xml<'a>(c: &mut Collector<'a>, text: &'a str) {
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find('<') {
            Some(0) => {
                let end = rest.find('>').map_or(rest.len(), |e| e + 1);
                let tag = &rest[..end];
                // Attribute values: what sits between a pair of quotes after `=`.
                let mut attrs = tag;
                while let Some(eq) = attrs.find('=') {
                    let after = attrs[eq + 1..].trim_start();
                    let Some(quote) = after.chars().next().filter(|q| *q == '"' || *q == '\'')
                    else {
                        attrs = &attrs[eq + 1..];
                        continue;
                    };
                    let inner = &after[1..];
                    let close = inner.find(quote).unwrap_or(inner.len());
                    let value = decode::html(&inner[..close]).into_owned();
                    c.push(TargetKind::Arg, "xml", Cow::Borrowed(""), Cow::Owned(value));
                    attrs = &inner[close.min(inner.len())..];
                    if let Some(rest_attrs) = attrs.get(1..) {
                        attrs = rest_attrs;
                    } else {
                        break;
                    }
                }
                rest = &rest[end..];
            }
            found => {
                let end = found.unwrap_or(rest.len());
                let node = rest[..end].trim();
                if !node.is_empty() {
                    let value = decode::html(node).into_owned();
                    c.push(TargetKind::Arg, "xml", Cow::Borrowed(""), Cow::Owned(value));
                }
                rest = &rest[end..];
            }
        }
    }
}
