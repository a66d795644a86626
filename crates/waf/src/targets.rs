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
    pub name: Name<'a>,
    /// The decoded value.
    pub value: Cow<'a, str>,
}

/// A target's name: its own text, or a JSON pointer kept in [`Extracted::pointers`] (built
/// into a location only when a rule matches, so a body's hundred values cost no hundred
/// copies of their pointers).
#[derive(Clone, Debug)]
pub enum Name<'a> {
    /// The name itself.
    Text(Cow<'a, str>),
    /// `Extracted::pointers[start..end]`.
    Pointer(u32, u32),
}

impl<'a> From<Cow<'a, str>> for Name<'a> {
    fn from(name: Cow<'a, str>) -> Name<'a> {
        Name::Text(name)
    }
}

/// A request taken apart.
pub struct Extracted<'a> {
    /// The JSON pointers targets name ([`Name::Pointer`]), one after the other.
    pub pointers: String,
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

impl Extracted<'_> {
    /// `place:name` (`arg:q`, `json:/memo`), or the place alone when it has no name.
    pub fn location(&self, target: &Target<'_>) -> String {
        let name = match &target.name {
            Name::Text(name) => name,
            Name::Pointer(start, end) => &self.pointers[*start as usize..*end as usize],
        };
        if name.is_empty() {
            target.place.to_owned()
        } else {
            format!("{}:{name}", target.place)
        }
    }
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
    pointers: String,
    budget: usize,
    used: usize,
    truncated: bool,
}

impl<'a> Collector<'a> {
    fn push(
        &mut self,
        kind: TargetKind,
        place: &'static str,
        name: impl Into<Name<'a>>,
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
            name: name.into(),
            value,
        });
    }

    /// `pointer` kept with the others, as a target's name.
    fn pointer(&mut self, pointer: &str) -> Name<'a> {
        if pointer.is_empty() {
            return Name::Text(Cow::Borrowed(""));
        }
        // Offsets fit in u32: the edge takes bodies of tens of MiB at most.
        let start = self.pointers.len() as u32;
        self.pointers.push_str(pointer);
        Name::Pointer(start, self.pointers.len() as u32)
    }

    /// Pushes what the JSON document `text` holds; when it is not JSON, pushes nothing and
    /// says so.
    fn json_or_drop(&mut self, text: &'a str) -> bool {
        let (targets, used, truncated) = (self.targets.len(), self.used, self.truncated);
        let pointers = self.pointers.len();
        if json(self, text).is_ok() {
            return true;
        }
        self.targets.truncate(targets);
        self.pointers.truncate(pointers);
        (self.used, self.truncated) = (used, truncated);
        false
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
        // About one value per 16 bytes of body: one allocation, not a growing vector's many.
        targets: Vec::with_capacity(8 + request.headers.len() * 2 + request.body.len() / 16),
        pointers: String::with_capacity((request.body.len() / 2).min(64 << 10)),
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
        // (HTTP/2 and the `http` crate's names are lower case already: no copy then.)
        let lower: Cow<'a, str> = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(name.to_ascii_lowercase())
        } else {
            Cow::Borrowed(name)
        };
        if name.contains(['\r', '\n']) || value.contains(['\r', '\n']) {
            framing.push("921140");
        }
        match &*lower {
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
                    lower.clone(),
                    Cow::Borrowed(value),
                );
            }
            _ => {}
        }
        let kind = if USER_TEXT_HEADERS.contains(&&*lower) {
            TargetKind::UserText
        } else if STRUCTURAL_HEADERS.contains(&&*lower) {
            continue;
        } else {
            TargetKind::Header
        };
        c.push(kind, "header", lower, decode::url(value, false));
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
        pointers: c.pointers,
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
        {
            c.json_or_drop(text);
        }
        return;
    }
    // (`from_utf8` first: its check is several times faster than the lossy decoder's.)
    let text: &'a str = match std::str::from_utf8(request.body) {
        Ok(s) => s,
        // Not UTF-8: inspect what decodes (the replacement characters stand for the rest).
        Err(_) => {
            let lossy = String::from_utf8_lossy(request.body).into_owned();
            c.push(
                TargetKind::Arg,
                "body",
                Cow::Borrowed(""),
                Cow::Owned(lossy),
            );
            return;
        }
    };
    let trimmed = text.trim_start();
    if content_type.contains("json") || (content_type.is_empty() && trimmed.starts_with(['{', '[']))
    {
        if !c.json_or_drop(text) {
            c.push(
                TargetKind::Arg,
                "body",
                Cow::Borrowed(""),
                Cow::Borrowed(text),
            );
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

/// Walks a JSON body as it is parsed, pushing each string, number and key (no tree is built,
/// and strings without escapes are borrowed from the body). `Err` when it is not JSON; the
/// caller then drops what was pushed.
fn json<'a>(c: &mut Collector<'a>, text: &'a str) -> Result<(), serde_json::Error> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_str(text);
    Walk {
        c,
        pointer: &mut String::new(),
        depth: 0,
    }
    .deserialize(&mut de)?;
    de.end()
}

/// One JSON value at `pointer`, `depth` levels down.
struct Walk<'c, 'a> {
    c: &'c mut Collector<'a>,
    pointer: &'c mut String,
    depth: usize,
}

impl<'c, 'a> Walk<'c, 'a> {
    fn push(self, value: Cow<'a, str>) {
        let name = self.c.pointer(self.pointer);
        self.c.push(TargetKind::Arg, "json", name, value);
    }

    /// The value under `self.pointer` + `/segment`.
    fn child<R>(&mut self, segment: &str, f: impl FnOnce(Walk<'_, 'a>) -> R) -> R {
        let len = self.pointer.len();
        self.pointer.push('/');
        for ch in segment.chars() {
            match ch {
                '~' => self.pointer.push_str("~0"),
                '/' => self.pointer.push_str("~1"),
                ch => self.pointer.push(ch),
            }
        }
        let out = f(Walk {
            c: self.c,
            pointer: self.pointer,
            depth: self.depth + 1,
        });
        self.pointer.truncate(len);
        out
    }
}

impl<'de, 'c> serde::de::DeserializeSeed<'de> for Walk<'c, 'de> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        if self.depth > JSON_DEPTH_MAX {
            self.c.truncated = true;
            <serde::de::IgnoredAny as serde::Deserialize>::deserialize(de)?;
            return Ok(());
        }
        de.deserialize_any(self)
    }
}

impl<'de, 'c> serde::de::Visitor<'de> for Walk<'c, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    /// Digits only: no rule can match (`rules::inert`), so there is nothing to take.
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, n: i64) -> Result<(), E> {
        self.push(Cow::Owned(n.to_string()));
        Ok(())
    }

    fn visit_f64<E>(self, n: f64) -> Result<(), E> {
        // As serde_json writes it (shortest form, exponent when long).
        if let Some(n) = serde_json::Number::from_f64(n) {
            self.push(Cow::Owned(n.to_string()));
        }
        Ok(())
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<(), E> {
        self.push(Cow::Borrowed(s));
        Ok(())
    }

    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        self.push(Cow::Owned(s.to_owned()));
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(mut self, mut items: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        loop {
            let found = self.child(&i.to_string(), |walk| items.next_element_seed(walk))?;
            if found.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(mut self, mut fields: A) -> Result<(), A::Error> {
        while let Some(Key(key)) = fields.next_key()? {
            let name = self.c.pointer(self.pointer);
            self.c
                .push(TargetKind::ArgName, "json-key", name, key.clone());
            self.child(&key, |walk| fields.next_value_seed(walk))?;
        }
        Ok(())
    }
}

/// A JSON object's key, borrowed from the body when it holds no escape.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Key<'de>, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        de.deserialize_str(KeyVisitor)
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
