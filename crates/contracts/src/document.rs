//! The contract document, pure: the text of a contract from what was agreed, and that text as
//! a PDF. No I/O and no clock — the issue time comes in — so the same contract renders to the
//! same bytes.
//!
//! The PDF uses the predefined Korean font `HYSMyeongJo-Medium` (Adobe-Korea1, the font PDF
//! readers provide for Korean text; text encoded with the `UniKS-UTF16-H` CMap), so the file
//! carries no font program. See docs/ARCHITECTURE.md (known limits) on embedding one.

use pdf_writer::types::{CidFontType, FontFlags, SystemInfo};
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

/// What a contract document says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contract {
    /// The contract's id.
    pub id: String,
    /// A title, e.g. `예금거래 약정서 (Deposit agreement)`.
    pub title: String,
    /// When it was issued (RFC 3339).
    pub issued_at: String,
    /// Labelled facts, in order: customer, product, rate, …
    pub facts: Vec<(String, String)>,
    /// The clauses, in order.
    pub clauses: Vec<String>,
}

/// A4, in points.
const PAGE_WIDTH: f32 = 595.0;
const PAGE_HEIGHT: f32 = 842.0;
const MARGIN: f32 = 56.0;
const FONT_SIZE: f32 = 10.0;
const TITLE_SIZE: f32 = 16.0;
const LEADING: f32 = 15.0;
/// Lines per page below the title block.
const LINES_PER_PAGE: usize = ((PAGE_HEIGHT - 2.0 * MARGIN - 40.0) / LEADING) as usize;
/// Width of a line in em: a Hangul syllable (or any wide character) is 1 em, Latin 0.5.
const LINE_EMS: f32 = (PAGE_WIDTH - 2.0 * MARGIN) / FONT_SIZE;
/// Pages are bounded, so a document is.
const PAGES_MAX: usize = 50;

/// The lines of the document, wrapped to the page width.
pub fn lines(contract: &Contract) -> Vec<String> {
    let mut out = vec![
        format!("계약번호 Contract no.: {}", contract.id),
        format!("발행 Issued: {}", contract.issued_at),
        String::new(),
    ];
    for (label, value) in &contract.facts {
        out.extend(wrap(&format!("{label}: {value}")));
    }
    out.push(String::new());
    for (n, clause) in contract.clauses.iter().enumerate() {
        out.extend(wrap(&format!("제{}조 {clause}", n + 1)));
        out.push(String::new());
    }
    out.push("서명 Signatures: recorded electronically with the SHA-256 of this document.".into());
    out
}

/// Breaks `text` into lines no wider than the page (wide characters count double), at the last
/// space before the edge when there is one.
fn wrap(text: &str) -> Vec<String> {
    let width = |t: &str| {
        t.chars()
            .map(|c| if c.is_ascii() { 0.5 } else { 1.0 })
            .sum::<f32>()
    };
    let mut lines = Vec::new();
    let mut line = String::new();
    for c in text.chars() {
        line.push(c);
        if width(&line) > LINE_EMS {
            let cut = line.trim_end().rfind(' ').filter(|&at| at > 0);
            let rest = match cut {
                Some(at) => {
                    let rest = line[at + 1..].to_owned();
                    line.truncate(at);
                    rest
                }
                None => line.pop().map(String::from).unwrap_or_default(),
            };
            lines.push(std::mem::replace(&mut line, rest));
        }
    }
    lines.push(line);
    lines
}

/// UTF-16BE, as the `UniKS-UTF16-H` CMap reads it.
fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// How `text` appears in the document's content streams: its UTF-16BE bytes as a PDF hex
/// string (what a test or an auditor searches for).
pub fn encoded(text: &str) -> String {
    let hex: String = utf16(text).iter().map(|b| format!("{b:02X}")).collect();
    format!("<{hex}>")
}

/// The document as a PDF.
pub fn render(contract: &Contract) -> Vec<u8> {
    let lines = lines(contract);
    let pages: Vec<&[String]> = lines.chunks(LINES_PER_PAGE).take(PAGES_MAX).collect();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let font = Ref::new(3);
    let cid_font = Ref::new(4);
    let descriptor = Ref::new(5);
    let info = Ref::new(6);
    let first_page = 7;
    let font_name = Name(b"F1");

    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    let page_ids: Vec<Ref> = (0..pages.len())
        .map(|i| Ref::new(first_page + 2 * i as i32))
        .collect();
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(pages.len() as i32);
    pdf.document_info(info)
        .title(TextStr(&contract.title))
        .subject(TextStr(&contract.id))
        .creator(TextStr("Gureum contracts"));
    pdf.type0_font(font)
        .base_font(Name(b"HYSMyeongJo-Medium"))
        .encoding_predefined(Name(b"UniKS-UTF16-H"))
        .descendant_font(cid_font);
    let mut cid = pdf.cid_font(cid_font);
    cid.subtype(CidFontType::Type0)
        .base_font(Name(b"HYSMyeongJo-Medium"))
        .system_info(SystemInfo {
            registry: Str(b"Adobe"),
            ordering: Str(b"Korea1"),
            supplement: 1,
        })
        .font_descriptor(descriptor)
        .default_width(1000.0);
    // The proportional Latin glyphs (CIDs 1–95) are half width.
    cid.widths().same(1, 95, 500.0);
    cid.finish();
    pdf.font_descriptor(descriptor)
        .name(Name(b"HYSMyeongJo-Medium"))
        .flags(FontFlags::SERIF | FontFlags::SYMBOLIC)
        .bbox(Rect::new(0.0, -148.0, 1001.0, 880.0))
        .italic_angle(0.0)
        .ascent(880.0)
        .descent(-120.0)
        .cap_height(880.0)
        .stem_v(91.0);

    for (i, page_lines) in pages.iter().enumerate() {
        let page_id = page_ids[i];
        let content_id = Ref::new(page_id.get() + 1);
        let mut page = pdf.page(page_id);
        page.parent(tree)
            .media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT))
            .contents(content_id);
        page.resources().fonts().pair(font_name, font);
        page.finish();
        let mut content = Content::new();
        content.begin_text();
        let top = PAGE_HEIGHT - MARGIN;
        if i == 0 {
            content.set_font(font_name, TITLE_SIZE);
            content.next_line(MARGIN, top);
            content.show(Str(&utf16(&contract.title)));
            content.set_font(font_name, FONT_SIZE);
            content.next_line(0.0, -40.0);
        } else {
            content.set_font(font_name, FONT_SIZE);
            content.next_line(MARGIN, top);
        }
        content.set_leading(LEADING);
        for line in page_lines.iter() {
            content.show(Str(&utf16(line)));
            content.next_line_using_leading();
        }
        content.end_text();
        let footer = format!("{} — {}/{}", contract.id, i + 1, pages.len());
        content.begin_text();
        content.set_font(font_name, 8.0);
        content.next_line(MARGIN, MARGIN / 2.0);
        content.show(Str(&utf16(&footer)));
        content.end_text();
        pdf.stream(content_id, &content.finish());
    }
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(clauses: usize) -> Contract {
        Contract {
            id: "01a2b3c4-0000-7000-8000-000000000001".into(),
            title: "예금거래 약정서 (Deposit agreement)".into(),
            issued_at: "2026-11-28T03:00:00Z".into(),
            facts: vec![("고객 Customer".into(), "김하늘 (900101-1******)".into())],
            clauses: (0..clauses)
                .map(|n| format!("조항 {n}: 이 약정은 예금거래기본약관을 따릅니다."))
                .collect(),
        }
    }

    /// The cross-reference table points at each object, and the trailer at the table: what a
    /// reader needs to open the file.
    fn check_structure(pdf: &[u8]) {
        let find_last = |needle: &[u8]| pdf.windows(needle.len()).rposition(|w| w == needle);
        assert!(pdf.starts_with(b"%PDF-1."));
        assert!(pdf.trim_ascii_end().ends_with(b"%%EOF"));
        let at = find_last(b"startxref").unwrap() + "startxref".len();
        let start: usize = std::str::from_utf8(&pdf[at..])
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let table = std::str::from_utf8(&pdf[start..]).unwrap();
        assert!(table.starts_with("xref"));
        let mut seen = 0;
        let entries = table
            .lines()
            .skip(2)
            .take_while(|e| !e.starts_with("trailer"));
        for (object, entry) in entries.enumerate() {
            if entry.trim_end().ends_with('n') {
                let offset: usize = entry[..10].parse().unwrap();
                let header = format!("{object} 0 obj");
                assert!(
                    pdf[offset..].starts_with(header.as_bytes()),
                    "object {object} at {offset}"
                );
                seen += 1;
            }
        }
        assert!(seen > 7, "{seen} objects");
    }

    #[test]
    fn the_same_contract_renders_to_the_same_valid_bytes() {
        let a = render(&contract(3));
        assert_eq!(a, render(&contract(3)));
        check_structure(&a);
        let needle = encoded("고객 Customer: 김하늘 (900101-1******)");
        assert!(String::from_utf8_lossy(&a).contains(&needle));
        assert_ne!(
            a,
            render(&Contract {
                issued_at: "2026-11-29T03:00:00Z".into(),
                ..contract(3)
            })
        );
    }

    #[test]
    fn long_contracts_flow_onto_more_pages() {
        let one = render(&contract(2));
        let many = render(&contract(60));
        check_structure(&many);
        let pages = |pdf: &[u8]| {
            let needle = b"/Type /Page\n";
            pdf.windows(needle.len()).filter(|w| w == needle).count()
        };
        assert!(
            pages(&many) > pages(&one),
            "{} vs {}",
            pages(&many),
            pages(&one)
        );
    }

    #[test]
    fn lines_wrap_at_the_page_width_and_between_words() {
        let long = "가".repeat(120);
        let wrapped = wrap(&long);
        assert_eq!(wrapped.len(), 3);
        assert!(wrapped.iter().all(|l| l.chars().count() as f32 <= LINE_EMS));
        assert_eq!(wrapped.concat(), long);
        let words = "Deposits are protected under the Depositor Protection Act. ".repeat(4);
        let wrapped = wrap(words.trim_end());
        assert!(wrapped.len() > 1);
        assert!(
            wrapped
                .iter()
                .all(|l| !l.starts_with(' ') && l.split(' ').all(|w| words.contains(w)))
        );
        assert_eq!(wrapped.join(" "), words.trim_end());
    }
}
