//! The rules: what each family looks for, at which paranoia level, how severe.
//!
//! Ids follow the OWASP CRS rule a rule corresponds to (so an operator can read CRS's notes on
//! it), but every pattern here is Gureum's own. Patterns run case-insensitively over one of
//! three views of each value: as decoded, with HTML references decoded (XSS), and as a shell
//! would read it once quoting tricks are undone (command injection).

use regex::bytes::{RegexSet, RegexSetBuilder};

/// The lazy DFA's cache per pattern set: large enough that matching does not keep clearing it.
const DFA_BYTES_MAX: usize = 32 << 20;

use crate::targets::{Target, TargetKind};
use crate::{Family, Severity, decode};

/// One inspection rule.
#[derive(Debug)]
pub struct Rule {
    /// Stable id (CRS's number for the same idea).
    pub id: &'static str,
    /// What it looks for.
    pub family: Family,
    /// The lowest paranoia level it runs at.
    pub paranoia: u8,
    /// What a match adds to the score.
    pub severity: Severity,
    /// One line for operators.
    pub description: &'static str,
    kinds: &'static [TargetKind],
    check: Check,
}

#[derive(Debug)]
enum Check {
    /// A pattern over a view of the value.
    Pattern(View, &'static str),
    /// libinjection's SQL tokenizer; fingerprints in [`WEAK_SQLI`] count only from paranoia 2.
    Sqli,
    /// libinjection's HTML5 tokenizer.
    Xss,
    /// Found while taking the request apart (see `targets::extract`).
    Framing,
    /// A check a pattern cannot say well.
    Function(Predicate),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum View {
    Plain,
    Html,
    Cmd,
}

use Severity::{Critical, Error, Warning};
use TargetKind::{Arg, ArgName, Cookie, FileName, Header, Path, UserText};

/// Arguments, their names, cookies and the free-text headers: what carries injections.
const INPUTS: &[TargetKind] = &[Arg, ArgName, Cookie, UserText];
/// The same and the path.
const INPUTS_AND_PATH: &[TargetKind] = &[Arg, ArgName, Cookie, UserText, Path];
/// Everything, headers too.
const ALL: &[TargetKind] = &[Arg, ArgName, Cookie, UserText, Header, Path, FileName];
const NONE: &[TargetKind] = &[];

/// libinjection fingerprints that are common in prose (`"NOT"`, `80% AND 20%`, `x--`) and
/// rare in real attacks on their own: at paranoia 1 they do not count.
const WEAK_SQLI: [&str; 6] = ["sos", "s&s", "1&1", "1c", "nc", "Enknk"];

/// SQL functions attackers call that are not English words (CRS 942151's idea): any call.
const SQL_FUNCTIONS: &str = r"(?i)\b(?:adddate|aes_(?:de|en)crypt|benchmark|bit_(?:and|count|length|or|xor)|char_length|chr|coalesce|coercibility|collation|concat(?:_ws)?|connection_id|crc32|current_(?:user|date|time|timestamp)|curdate|curtime|database|date_(?:add|format|sub)|des_(?:de|en)crypt|elt|export_set|extractvalue|find_in_set|found_rows|from_(?:base64|days|unixtime)|get_lock|group_concat|ifnull|inet6?_(?:aton|ntoa)|is_(?:free|used)_lock|isnull|last_insert_id|load_file|make_set|master_pos_wait|md5|name_const|nullif|pg_sleep|release_lock|row_count|sec_to_time|session_user|sha[12]|sleep|soundex|starts_with|strcmp|str_to_date|subdate|substr(?:ing(?:_index)?)?|sysdate|system_user|time_to_sec|to_base64|uncompress(?:ed_length)?|unhex|unistr|updatexml|utl_(?:http|inaddr)|xmltype|lo_(?:import|export|get|put|from_bytea|open|create)|json_(?:build_object|extract|keys)|jsonb_\w+|sqlite_\w+|dbms_\w+|rtrim|ltrim|ucase|lcase)\W*\(";

/// SQL functions that are also English words: only a call whose parenthesis ends the value
/// or holds what SQL passes (a number, a quote, a variable, another call).
const SQL_FUNCTIONS_AMBIGUOUS: &str = r#"(?i)\b(?:abs|acos|asin|atan2?|bin|cast|ceil(?:ing)?|char|charset|div|compress|conv|convert|cos|cot|decode|degrees|encode|encrypt|exp|field|format|greatest|hex|insert|instr|least|left|length|ln|locate|log(?:2|10)?|lower|lpad|mid|oct|ord|pi|position|pow(?:er)?|quote|radians|rand|repeat|replace|reverse|right|round|rpad|schema|sign|sin|space|sqrt|tan|trim|upper|user|uuid|version)\s*\(\s*(?:$|\)|\d|['"`@]|\w+\s*\()"#;

/// Every rule, in id order within each family.
#[rustfmt::skip]
pub static RULES: &[Rule] = &[
    // ---- protocol (921) and request framing (920)
    Rule { id: "920220", family: Family::Protocol, paranoia: 1, severity: Warning, description: "invalid percent-encoding in the request target", kinds: NONE, check: Check::Framing, },
    Rule { id: "920270", family: Family::Protocol, paranoia: 1, severity: Error, description: "NUL byte in the request target", kinds: NONE, check: Check::Framing, },
    Rule { id: "921110", family: Family::Protocol, paranoia: 1, severity: Critical, description: "request smuggling: an HTTP request line inside an argument", kinds: &[Arg, ArgName, Cookie, Header], check: Check::Pattern(View::Plain, r"(?i)[\n\r]+\s*(?:get|post|head|options|connect|put|delete|trace|track|patch|propfind|proppatch|mkcol|copy|move|lock|unlock)\s+\S+\s+http/\d"), },
    Rule { id: "921120", family: Family::Protocol, paranoia: 1, severity: Critical, description: "response splitting: a line break then a response header", kinds: &[Arg, ArgName, Cookie], check: Check::Pattern(View::Plain, r"(?i)[\n\r]+\s*(?:location|refresh|set-cookie|content-(?:type|length)|x-xss-protection|(?:x-)?forwarded-(?:for|host)|via|remote-(?:ip|addr)|originating-ip)\s*:"), },
    Rule { id: "921130", family: Family::Protocol, paranoia: 1, severity: Critical, description: "response splitting: a status line or markup after a line break", kinds: &[Arg, ArgName, Cookie], check: Check::Pattern(View::Plain, r"(?i)(?:\bhttp/\d(?:\.\d)?\s+\d{3}\b|[\n\r]+\s*<(?:html|meta|script)\b)"), },
    Rule { id: "921140", family: Family::Protocol, paranoia: 1, severity: Critical, description: "header injection: a line break inside a header", kinds: NONE, check: Check::Framing, },
    Rule { id: "921150", family: Family::Protocol, paranoia: 1, severity: Critical, description: "a line break inside an argument's name", kinds: &[ArgName], check: Check::Pattern(View::Plain, r"[\n\r]"), },
    Rule { id: "921170", family: Family::Protocol, paranoia: 1, severity: Critical, description: "request smuggling: several Content-Length headers, or Content-Length with Transfer-Encoding", kinds: NONE, check: Check::Framing, },
    Rule { id: "921180", family: Family::Protocol, paranoia: 1, severity: Critical, description: "request smuggling: a Transfer-Encoding other than chunked", kinds: NONE, check: Check::Framing, },
    Rule { id: "921190", family: Family::Protocol, paranoia: 1, severity: Critical, description: "a line break in the path", kinds: &[Path], check: Check::Pattern(View::Plain, r"[\n\r]"), },
    // ---- path traversal and local files (930)
    Rule { id: "930100", family: Family::Lfi, paranoia: 1, severity: Critical, description: "path traversal in encoded form", kinds: ALL, check: Check::Pattern(View::Plain, r"(?i)(?:%(?:c0%ae|c0%2e|2e%2e|u002e%u002e)|0x2e\.|\.%00|\.\.0x2f|\.{3,}[/\\])"), },
    Rule { id: "930110", family: Family::Lfi, paranoia: 1, severity: Critical, description: "path traversal (../)", kinds: ALL, check: Check::Pattern(View::Plain, r"(?:^|[/\\])\.\.(?:[/\\;]|$)|\.\.[/\\]"), },
    Rule { id: "930120", family: Family::Lfi, paranoia: 1, severity: Critical, description: "an operating-system file", kinds: ALL, check: Check::Pattern(View::Plain, r"(?i)(?:/etc/[\w.-]+|/sys/(?:class|kernel|devices|block|bus|firmware|module|power|fs)\b|/proc/(?:self|\d+|version|cpuinfo|meminfo|net)|/var/(?:log|mail|spool|www|lib/mysql)|/usr/local/(?:apps|etc|apache)|/root/|/home/\w+/\.|\b(?:boot|win|system)\.ini\b|windows[/\\]system32|\bhttpd\.conf\b|\.htpasswd\b|\.htaccess\b|\bweb\.config\b|\bwp-config\.php\b|\.bash_history\b|\.ssh/|id_rsa\b|/\.(?:docker|aws|kube|gnupg|azure|gcloud)/|(?:^|[\s<>|;=])/tmp/|\.(?:sql|bak|dump|tfstate|kdbx)(?:\.(?:gz|zip|tar|bz2|7z))?$|/dev/(?:tcp|udp)/|c:[/\\]+(?:windows|winnt|boot))"), },
    Rule { id: "930130", family: Family::Lfi, paranoia: 1, severity: Critical, description: "a restricted file or folder in the path", kinds: &[Path, FileName], check: Check::Pattern(View::Plain, r"(?i)(?:/|^)(?:\.(?:git|svn|hg|bzr|env|aws|ssh|docker|kube|npmrc|pypirc|netrc|bash_history|htaccess|htpasswd|ds_store|idea|vscode|claude|cursor|continue|gemini|codex|aider|windsurf|github|gitlab|circleci|terraform)|(?:sys|proc)/|web-inf|meta-inf|wp-config|backup|dump)|(?:debug|errors?|access)\.log$|\.(?:sql|bak|old|orig|swp|sav|dump|tfstate|pem|key|p12|kdbx)(?:\.(?:gz|zip|tar|bz2|7z))?$"), },
    Rule { id: "930140", family: Family::Lfi, paranoia: 1, severity: Critical, description: "a hidden file or folder in the path (tool configuration, secrets), /.well-known/ aside", kinds: &[Path], check: Check::Function(hidden_path_segment), },
    // ---- remote file inclusion (931)
    Rule { id: "931100", family: Family::Rfi, paranoia: 1, severity: Critical, description: "a URL with an IP address as an include target", kinds: &[Arg], check: Check::Pattern(View::Plain, r"(?i)^(?:url:)?(?:file|ftps?|https?)://\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}"), },
    Rule { id: "931110", family: Family::Rfi, paranoia: 1, severity: Critical, description: "a URL in a parameter known for file inclusion", kinds: &[Arg], check: Check::Pattern(View::Plain, r"(?i)(?:\binclude\s*\(\s*|\b(?:_?path|mosconfig_[a-z_]+|_conf\[[^\]]+\]|_server\[[^\]]+\])=)(?:file|ftps?|https?)://"), },
    Rule { id: "931120", family: Family::Rfi, paranoia: 1, severity: Critical, description: "a URL ending in a question mark (include with a trailing query)", kinds: &[Arg], check: Check::Pattern(View::Plain, r"(?i)^(?:file|ftps?|https?)://.*\?+$"), },
    // ---- server-side request forgery (934110's idea)
    Rule { id: "934110", family: Family::Ssrf, paranoia: 1, severity: Critical, description: "a URL aimed at a cloud metadata service or an internal address", kinds: &[Arg, Cookie, UserText, Header], check: Check::Pattern(View::Plain, r"(?i)(?:(?:https?|gopher|dict|ftp|file|ldap|tftp|sftp|jar|netdoc)://[^/\s]*?(?:169\.254\.169\.254|\[?fd00:ec2::254|metadata\.google\.internal|metadata\.azure\.com|100\.100\.100\.200|localhost|127\.\d+\.\d+\.\d+|0\.0\.0\.0|\[::1?\]|0x7f|2130706433|10\.\d+\.\d+\.\d+|192\.168\.\d+\.\d+|172\.(?:1[6-9]|2\d|3[01])\.\d+\.\d+)|\b(?:gopher|dict|ldap|tftp|jar|netdoc)://)"), },
    // ---- command execution (932)
    Rule { id: "932120", family: Family::Rce, paranoia: 1, severity: Critical, description: "a PowerShell command", kinds: INPUTS, check: Check::Pattern(View::Plain, r"(?i)\b(?:powershell(?:\.exe)?|pwsh|invoke-(?:webrequest|expression|command|restmethod|item|wmimethod)|new-object\s+(?:system\.)?net\.webclient|start-process|set-executionpolicy|get-(?:wmiobject|process|childitem|content)|downloadstring|-encodedcommand|iex\s*\(|iwr\s+|iwmi\s+)"), },
    Rule { id: "932125", family: Family::Rce, paranoia: 1, severity: Critical, description: "a PowerShell alias after a command separator", kinds: INPUTS, check: Check::Pattern(View::Plain, r"(?i)(?:^|[;&|`\n\r(])\s*(?:iex|iwr|iwmi|irm|icm|saps|sal|gci|gc|gwmi|ni|si)\b"), },
    Rule { id: "932130", family: Family::Rce, paranoia: 1, severity: Critical, description: "a Unix shell expression: $(…), ${…}, `…`, <(…), >(…)", kinds: INPUTS, check: Check::Pattern(View::Plain, r"\$\(\(?[^)]*\)|\$\{[^}]*\}|[<>]\([^)]*\)|/[\w.-]*\[[!^]?[\w/-]*\]|`[^`]*`|\$\[[^\]]*\]"), },
    Rule { id: "932140", family: Family::Rce, paranoia: 1, severity: Critical, description: "a Windows FOR or IF command", kinds: INPUTS, check: Check::Pattern(View::Plain, r"(?i)\bfor(?:\s+/[dflr][^\n]*?)?\s+%{1,2}\S+\s+in\s*\(.*\)\s*do\b|\bif(?:\s*/i)?(?:\s+not)?\s+(?:exist\b|defined\b|errorlevel\b|cmdextversion\b|(?:\S+\s*(?:==|\s+(?:equ|neq|lss|leq|gtr|geq)\s+)\s*\S+))"), },
    Rule { id: "932160", family: Family::Rce, paranoia: 1, severity: Critical, description: "a Unix shell or tool by its path", kinds: INPUTS, check: Check::Pattern(View::Cmd, r"(?:^|[^\w.-])/?(?:usr/(?:local/)?)?s?bin/\w+|/etc/(?:passwd|shadow|group|hosts)\b|/dev/(?:tcp|udp)/|\$(?:shell|ifs|bash|home|path)\b"), },
    Rule { id: "932170", family: Family::Rce, paranoia: 1, severity: Critical, description: "Shellshock in a header", kinds: &[Header, UserText, Cookie], check: Check::Pattern(View::Plain, r"^\s*\(\s*\)\s*\{"), },
    Rule { id: "932171", family: Family::Rce, paranoia: 1, severity: Critical, description: "Shellshock in an argument", kinds: &[Arg, ArgName, Path], check: Check::Pattern(View::Plain, r"^\s*\(\s*\)\s*\{"), },
    Rule { id: "932175", family: Family::Rce, paranoia: 1, severity: Critical, description: "a Unix alias definition", kinds: INPUTS, check: Check::Pattern(View::Plain, r#"(?i)\balias\s+['"]?[\w.-]+['"]?\s*=\s*['"]?"#), },
    Rule { id: "932180", family: Family::Rce, paranoia: 1, severity: Critical, description: "an upload of a server configuration file", kinds: &[FileName], check: Check::Pattern(View::Plain, r"(?i)(?:^|[/\\])(?:\.htaccess|\.htpasswd|\.htdigest|web\.config|\.user\.ini|php\.ini|settings\.php|config\.(?:php|ya?ml|json|xml|inc)|wp-config\.php|\.env|\.boto|\.bashrc|\.profile|\.npmrc|\.git\w*|authorized_keys|id_rsa|crontab|\.s3cfg|\.netrc|\.pgpass|\.my\.cnf)$"), },
    Rule { id: "932230", family: Family::Rce, paranoia: 1, severity: Critical, description: "a Unix command after a command separator", kinds: INPUTS, check: Check::Pattern(View::Cmd, UNIX_AFTER_SEPARATOR), },
    Rule { id: "932235", family: Family::Rce, paranoia: 1, severity: Critical, description: "a Unix command at the start of a value followed by an argument", kinds: &[Arg, ArgName, Cookie], check: Check::Pattern(View::Cmd, UNIX_AT_START), },
    Rule { id: "932250", family: Family::Rce, paranoia: 1, severity: Critical, description: "a shell run with -c", kinds: INPUTS, check: Check::Pattern(View::Cmd, r"\b(?:a|ba|da|k|z|tc|c|fi)?sh\s*-c\b|\b(?:sh|bash|ksh|zsh)\s+-c|-wrapper\s+sh"), },
    Rule { id: "932260", family: Family::Rce, paranoia: 1, severity: Critical, description: "a Unix command piped into another or run from a script", kinds: INPUTS, check: Check::Pattern(View::Cmd, r"\|\s*(?:ba|da|z|k)?sh\b|\|\s*(?:rev|base64|xxd|perl|python[0-9.]*|ruby|php|sh)\b|\bpython[0-9.]+\s+\S|\b(?:printf|echo)\s+\S+\s*\|"), },
    Rule { id: "932270", family: Family::Rce, paranoia: 1, severity: Critical, description: "tilde expansion (~+, ~-)", kinds: &[Arg], check: Check::Pattern(View::Plain, r"^~[+-]\d*$"), },
    Rule { id: "932280", family: Family::Rce, paranoia: 1, severity: Critical, description: "brace expansion ({a,b})", kinds: &[Arg], check: Check::Pattern(View::Plain, r"\{[\w./-]*,[\w./,-]*\}"), },
    Rule { id: "932330", family: Family::Rce, paranoia: 1, severity: Critical, description: "shell history expansion (!-n)", kinds: &[Arg], check: Check::Pattern(View::Plain, r"!-\d"), },
    Rule { id: "932340", family: Family::Rce, paranoia: 1, severity: Critical, description: "a short Unix command after a separator", kinds: &[Arg, ArgName, Cookie, UserText, Header], check: Check::Pattern(View::Cmd, r"^[;|&`]+\s*(?:ps|id|env|ls|w|who|pwd|set|uname|whoami|ifconfig|netstat|cat|dir|ver|ipconfig|apt|apt-get|aptitude|dpkg|yum|dnf|rpm|pip3?|npm|gem)\b"), },
    Rule { id: "932370", family: Family::Rce, paranoia: 1, severity: Critical, description: "a Windows command after a separator", kinds: INPUTS, check: Check::Pattern(View::Cmd, r"(?:^|[;&|`(])\s*(?:regedit|mshta|certutil|bitsadmin|rundll32|regsvr32|wmic|cscript|wscript|schtasks|reg|sc|net|netsh|taskkill|tasklist|systeminfo|whoami|ipconfig|cmd(?:\.exe)?|msiexec|vssadmin|bcdedit|bcdboot|cipher|icacls|takeown|forfiles|attrib|xcopy|robocopy|diskpart|format|shutdown|nltest|dsquery)\b"), },
    Rule { id: "932380", family: Family::Rce, paranoia: 1, severity: Critical, description: "a Windows command with a switch or redirection", kinds: INPUTS, check: Check::Pattern(View::Plain, r"(?i)(?:[;&|]|\b)(?:regedit|mshta|certutil|bitsadmin|rundll32|regsvr32|wmic|cscript|wscript|schtasks|vssadmin|bcdedit|bcdboot|takeown|forfiles|nltest|dsquery)(?:\.exe)?\s*(?:/|-|<|>)"), },
    // ---- XSS (941)
    Rule { id: "941100", family: Family::Xss, paranoia: 1, severity: Critical, description: "XSS found by libinjection", kinds: &[Arg, ArgName, Cookie, UserText], check: Check::Xss, },
    Rule { id: "941110", family: Family::Xss, paranoia: 1, severity: Critical, description: "a script tag", kinds: ALL, check: Check::Pattern(View::Html, r"(?i)<\s*(?:[\w-]+:)?script[^\w]"), },
    Rule { id: "941120", family: Family::Xss, paranoia: 1, severity: Critical, description: "an event handler attribute", kinds: ALL, check: Check::Pattern(View::Html, r#"(?i)(?:^|[\s"'`;/=\x0b\x0c])on[a-z]{3,40}[\s\x0b\x0c]*="#), },
    Rule { id: "941130", family: Family::Xss, paranoia: 1, severity: Critical, description: "XSS through an XML namespace, a data URI or XSLT", kinds: INPUTS, check: Check::Pattern(View::Html, r"(?i)\bxmlns(?::\w+)?\s*=|\bxlink:href\b|data:(?:text/html|[^,]*;base64|,)|<!(?:entity|doctype)\b|!entity\s+%?\s*\w+\s+system\b|\bxsi:|xml-stylesheet|\bextractvalue\s*\("), },
    Rule { id: "941140", family: Family::Xss, paranoia: 1, severity: Critical, description: "script in a CSS url() or expression()", kinds: INPUTS, check: Check::Pattern(View::Html, r"(?i)(?:url\s*\(\s*['\x22]?\s*(?:java|vb)script|expression\s*\(|-moz-binding\s*:|behavior\s*:)"), },
    Rule { id: "941160", family: Family::Xss, paranoia: 1, severity: Critical, description: "an HTML tag or attribute that runs script", kinds: INPUTS_AND_PATH, check: Check::Pattern(View::Html, r#"(?i)<[^\w<>]*(?:[^<>"'\s]*:)?[^\w<>]*(?:\W*s\W*c\W*r\W*i\W*p\W*t|\W*f\W*o\W*r\W*m|\W*s\W*t\W*y\W*l\W*e|\W*s\W*v\W*g|\W*m\W*a\W*r\W*q\W*u\W*e\W*e|(?:\W*l\W*i\W*n\W*k|\W*o\W*b\W*j\W*e\W*c\W*t|\W*e\W*m\W*b\W*e\W*d|\W*a\W*p\W*p\W*l\W*e\W*t|\W*p\W*a\W*r\W*a\W*m|\W*i?\W*f\W*r\W*a\W*m\W*e|\W*b\W*a\W*s\W*e|\W*b\W*o\W*d\W*y|\W*m\W*e\W*t\W*a|\W*i\W*m\W*a?\W*g\W*e?|\W*v\W*i\W*d\W*e\W*o|\W*a\W*u\W*d\W*i\W*o|\W*b\W*i\W*n\W*d\W*i\W*n\W*g\W*s|\W*s\W*e\W*t|\W*i\W*s\W*i\W*n\W*d\W*e\W*x|\W*a\W*n\W*i\W*m\W*a\W*t\W*e)[^>\w])|(?:<\w[\s\S]*[\s/]|['"](?:[\s\S]*[\s/])?)(?:formaction|style|background|src|lowsrc|ping|on(?:d(?:e(?:vice(?:(?:orienta|mo)tion|proximity|found|light)|livery(?:success|error)|activate)|r(?:ag(?:e(?:n(?:ter|d)|xit)|(?:gestur|leav)e|start|drop|over)|op)|i(?:s(?:abled|connected)|aling)|ata(?:setc(?:omplete|hanged)|(?:availabl|chang)e|error)|urationchange|ownloading|blclick)|Moz(?:M(?:agnifyGesture(?:Update|Start)?|ouse(?:PixelScroll|Hittest))|S(?:wipeGesture(?:Update|Start|End)?|crolledAreaChanged)|(?:(?:Press)?TapGestur|BeforeResiz)e|EdgeUI(?:C(?:omplet|ancel)|Start)ed|RotateGesture(?:Update|Start)?|A(?:udioAvailable|fterPaint))|c(?:o(?:m(?:p(?:osition(?:update|start|end)|lete)|mand(?:update)?)|n(?:t(?:rolselect|extmenu)|nect(?:ing|ed))|py)|a(?:(?:llschang|ch)ed|nplay(?:through)?|rdstatechange)|h(?:(?:arging(?:time)?ch)?ange|ecking)|(?:fstate|ell)change|u(?:echange|t)|l(?:ick|ose))|s(?:t(?:a(?:techange|lled|rt)|k(?:sessione|comma)nd|op)|e(?:ek(?:complete|ing|ed)|(?:lec(?:tstar)?)?t|n(?:ding|t))|(?:peech|ound)(?:start|end)|u(?:ccess|spend|bmit)|croll|how)|m(?:o(?:z(?:(?:pointerlock|fullscreen)(?:change|error)|(?:orientation|time)change|network(?:down|up)load)|use(?:(?:lea|mo)ve|o(?:ver|ut)|enter|wheel|down|up)|ve(?:start|end)?)|essage|ark)|a(?:n(?:imation(?:iteration|start|end)|tennastatechange)|fter(?:(?:scriptexecu|upda)te|print)|udio(?:process|start|end)|d(?:apteradded|dtrack)|ctivate|lerting|bort)|b(?:e(?:fore(?:(?:(?:de)?activa|scriptexecu)te|u(?:nload|pdate)|p(?:aste|rint)|c(?:opy|ut)|editfocus)|gin(?:Event)?)|oun(?:dary|ce)|l(?:ocked|ur)|roadcast|usy)|DOM(?:Node(?:Inserted(?:IntoDocument)?|Removed(?:FromDocument)?)|(?:CharacterData|Subtree)Modified|A(?:ttrModified|ctivate)|Focus(?:Out|In)|MouseScroll)|r(?:e(?:s(?:u(?:m(?:ing|e)|lt)|ize|et)|adystatechange|pea(?:tEven)?t|movetrack|trieving|ceived)|ow(?:s(?:inserted|delete)|e(?:nter|xit))|atechange)|p(?:op(?:up(?:hid(?:den|ing)|show(?:ing|n))|state)|a(?:ge(?:hide|show)|(?:st|us)e|int)|ro(?:pertychange|gress)|lay(?:ing)?)|t(?:ouch(?:(?:lea|mo)ve|en(?:ter|d)|cancel|start)|ime(?:update|out)|ransitionend|ext)|u(?:s(?:erproximity|sdreceived)|p(?:gradeneeded|dateready)|n(?:derflow|load))|f(?:o(?:rm(?:change|input)|cus(?:out|in)?)|i(?:lterchange|nish)|ailed)|l(?:o(?:ad(?:e(?:d(?:meta)?data|nd)|start)?|secapture)|evelchange|y)|g(?:amepad(?:(?:dis)?connected|button(?:down|up)|axismove)|et)|e(?:n(?:d(?:Event|ed)?|abled|ter)|rror(?:update)?|mptied|xit)|i(?:cc(?:cardlockerror|infochange)|n(?:coming|valid|put))|o(?:(?:(?:ff|n)lin|bsolet)e|verflow(?:changed)?|pen)|SVG(?:(?:Unl|L)oad|Resize|Scroll|Abort|Error|Zoom)|h(?:e(?:adphoneschange|l[dp])|ashchange|olding)|v(?:o(?:lum|ic)e|ersion)change|w(?:a(?:it|rn)ing|heel)|key(?:press|down|up)|(?:AppComman|Loa)d|no(?:update|match)|Request|zoom))[\s\x08]*?="#), },
    Rule { id: "941170", family: Family::Xss, paranoia: 1, severity: Critical, description: "a javascript: or vbscript: URI, or a data: URI with script", kinds: INPUTS, check: Check::Pattern(View::Html, r"(?i)(?:\W|^)(?:java|vb|live)\s*script\s*:|\bdata\s*:\s*(?:text/html|[^,]*base64|[^,]*,\s*<)|(?:^|['\x22\s])\s*javascript\s*:"), },
    Rule { id: "941180", family: Family::Xss, paranoia: 1, severity: Critical, description: "a DOM property attackers reach for (document.cookie, window.location, …)", kinds: INPUTS, check: Check::Pattern(View::Html, r"(?i)\b(?:document\s*\.\s*(?:cookie|write|domain|location)|window\s*\.\s*(?:location|open|name)|document\s*\.\s*(?:queryselector\w*|getelement\w+|createelement|body|head|documentelement|forms)|\.\s*(?:innerhtml|outerhtml|textcontent|appendchild|insertadjacenthtml|fromcharcode)|\blocation\s*\.\s*(?:href|hash|replace))\b"), },
    Rule { id: "941190", family: Family::Xss, paranoia: 1, severity: Critical, description: "XSS through a style sheet", kinds: INPUTS, check: Check::Pattern(View::Html, r"(?i)<\s*style\b[^>]*>.*?(?:@\s*i\W*m\W*p\W*o\W*r\W*t|:\s*(?:url|expression)\s*\(|-moz-binding)"), },
    Rule { id: "941200", family: Family::Xss, paranoia: 1, severity: Critical, description: "VML frames", kinds: INPUTS, check: Check::Pattern(View::Html, r"(?i)<\s*\w*:(?:vmlframe|rect|image|shape|oval|line)\b"), },
    Rule { id: "941210", family: Family::Xss, paranoia: 1, severity: Critical, description: "an obfuscated javascript: (entities or control characters inside)", kinds: INPUTS, check: Check::Pattern(View::Html, r"(?i)j[\s\x00-\x1f]*a[\s\x00-\x1f]*v[\s\x00-\x1f]*a[\s\x00-\x1f]*s[\s\x00-\x1f]*c[\s\x00-\x1f]*r[\s\x00-\x1f]*i[\s\x00-\x1f]*p[\s\x00-\x1f]*t[\s\x00-\x1f]*:"), },
    Rule { id: "941220", family: Family::Xss, paranoia: 1, severity: Critical, description: "an obfuscated vbscript:", kinds: INPUTS, check: Check::Pattern(View::Html, r"(?i)v[\s\x00-\x1f]*b[\s\x00-\x1f]*s[\s\x00-\x1f]*c[\s\x00-\x1f]*r[\s\x00-\x1f]*i[\s\x00-\x1f]*p[\s\x00-\x1f]*t[\s\x00-\x1f]*:"), },
    Rule { id: "941230", family: Family::Xss, paranoia: 1, severity: Critical, description: "an embed, object, applet, link, base, meta or import tag", kinds: INPUTS, check: Check::Pattern(View::Html, r"(?i)<\s*(?:embed|object|applet|link|base|meta|frameset|i?frame|isindex)\b|<\s*\??\s*import\w*|\bimplementation\s*="), },
    Rule { id: "941310", family: Family::Xss, paranoia: 1, severity: Critical, description: "US-ASCII or UTF-7 encoded markup", kinds: INPUTS, check: Check::Pattern(View::Plain, r"(?i)\\x(?:c2\\x)?bc\s*/?\s*script|(?:\xbc|\xc2\xbc)\s*/?\s*script|\+ad[w0]-|\\x[cd][0-9a-f]\\xbcscript|\\xbc[^\\]{0,32}\\xbe"), },
    Rule { id: "941360", family: Family::Xss, paranoia: 1, severity: Critical, description: "JSFuck", kinds: INPUTS, check: Check::Pattern(View::Plain, r"!\s*!\s*\[\s*\]|\(\s*!\s*\[\s*\]\s*\+?\s*\[\s*\]\s*\)|\[\s*\]\s*\[\s*\(|[+\s]!\s*[+\s]\s*\[\s*\]|\[\s*[+\s]\s*!"), },
    Rule { id: "941370", family: Family::Xss, paranoia: 1, severity: Critical, description: "a JavaScript global reached indirectly (document[…], window[…], comments between)", kinds: INPUTS, check: Check::Pattern(View::Html, r#"(?i)\b(?:self|document|this|top|window|globalthis|parent|frames)\s*(?:/\*.*?\*/\s*)*\)?\s*(?:/\*.*?\*/\s*)*(?:\[\s*(?:/\*.*?\*/\s*)*['"`]|\.\s*(?:/\*.*?\*/\s*)*(?:cookie|location|domain)\b)"#), },
    Rule { id: "941390", family: Family::Xss, paranoia: 1, severity: Critical, description: "a JavaScript function that runs a string (eval, setTimeout, …)", kinds: INPUTS, check: Check::Pattern(View::Html, r"(?i)\b(?:eval|set(?:timeout|interval)|new\s+function|function\s*\(\s*\)|execscript|alert|confirm|prompt|fetch|atob|btoa)\s*[\(`]"), },
    Rule { id: "941400", family: Family::Xss, paranoia: 1, severity: Critical, description: "JavaScript called through a template literal", kinds: INPUTS, check: Check::Pattern(View::Html, r"(?i)\[\s*\]\s*\.(?:\s*/\*.*?\*/)?\s*(?:sort|map|filter|find|reduce|flat|concat)\s*\.\s*(?:call|apply|bind)\s*`|\.\s*(?:call|apply)\s*`"), },
    // ---- SQL injection (942)
    Rule { id: "942100", family: Family::Sqli, paranoia: 1, severity: Critical, description: "SQL injection found by libinjection", kinds: INPUTS, check: Check::Sqli, },
    Rule { id: "942130", family: Family::Sqli, paranoia: 1, severity: Critical, description: "a SQL tautology (or 1=1, ' or 'a'='a)", kinds: INPUTS, check: Check::Pattern(View::Plain, r#"(?i)\b(?:or|and|xor)\s+['"`(]?\d+['"`)]?\s*(?:=|<>|!=|<=?|>=?)\s*['"`(]?\d+|['"`]\s*(?:or|and|xor|\|\||&&)\s*['"`(]?\w*['"`)]?\s*(?:=|<>|!=|like)\s*['"`]"#), },
    Rule { id: "942140", family: Family::Sqli, paranoia: 1, severity: Critical, description: "a database's catalogue names", kinds: INPUTS_AND_PATH, check: Check::Pattern(View::Plain, r"(?i)\b(?:information_schema|pg_catalog|pg_(?:user|shadow|database|tables)|mysql\.(?:user|db)|sys\.(?:objects|tables|columns|databases)|sysobjects|syscolumns|sysdatabases|master\.\.sys|msysaccessobjects|msysobjects|sqlite_(?:master|schema|temp_master)|all_(?:tables|users|tab_columns)|user_(?:tables|objects|tab_columns)|dba_users|v\$version|northwind|schema_name)\b|\b(?:database|db_name)\s*\(|^\s*(?:tempdb|msdb)\s*$"), },
    Rule { id: "942151", family: Family::Sqli, paranoia: 1, severity: Critical, description: "a SQL function call", kinds: INPUTS_AND_PATH, check: Check::Pattern(View::Plain, SQL_FUNCTIONS), },
    Rule { id: "942152", family: Family::Sqli, paranoia: 1, severity: Critical, description: "a SQL function call whose name is also a word, with SQL arguments", kinds: INPUTS, check: Check::Pattern(View::Plain, SQL_FUNCTIONS_AMBIGUOUS), },
    Rule { id: "942160", family: Family::Sqli, paranoia: 1, severity: Critical, description: "a blind SQL injection delay (sleep, benchmark)", kinds: INPUTS_AND_PATH, check: Check::Pattern(View::Plain, r"(?i)\b(?:sleep\s*\(\s*\d|benchmark\s*\(|pg_sleep\s*\(|dbms_pipe\.receive_message|randomblob\s*\(\s*\d{6,})"), },
    Rule { id: "942170", family: Family::Sqli, paranoia: 1, severity: Critical, description: "a SQL benchmark, sleep or if in a select", kinds: INPUTS, check: Check::Pattern(View::Plain, r"(?i)\bselect\s*\(?\s*(?:benchmark|if|sleep)\s*\(|;\s*(?:sleep|benchmark)\s*\("), },
    Rule { id: "942190", family: Family::Sqli, paranoia: 1, severity: Critical, description: "MSSQL code execution and information gathering, union select", kinds: INPUTS_AND_PATH, check: Check::Pattern(View::Plain, r#"(?i)\bunion\b[\s\S]{0,40}?\bselect\b|\b(?:xp_cmdshell|sp_executesql|sp_oacreate|sp_makewebtask|xp_reg\w+|xp_dirtree|openrowset|opendatasource)\b|\bexec(?:ute)?\s+master\.|\binto\s+(?:out|dump)file\b|\bfrom\W+information_schema\W|["'`]\s*;?\s*select\b|["'`]\s*!\s*["'`\w]|\b(?:current_user|user|database|schema|version|connection_id)\s*\(\s*(?:\)|$|\n)|\bselect\s+iif\s*\(|\bselect\b\s*(?:\*|\w+\s*,)[\s\S]*?\bfrom\b|\bdeclare\s+@\w+"#), },
    Rule { id: "942220", family: Family::Sqli, paranoia: 1, severity: Critical, description: "the number that hangs some floating-point parsers (2.2250738585072011e-308; as a JSON number it reads back as 2.225073858507201e-308)", kinds: INPUTS, check: Check::Pattern(View::Plain, r"(?i)2\.225073858507201\d*e-?308"), },
    Rule { id: "942230", family: Family::Sqli, paranoia: 1, severity: Critical, description: "a SQL conditional (case when, ) like (, if(…,…))", kinds: INPUTS, check: Check::Pattern(View::Plain, r"(?i)[\s()]case\s+when\b[\s\S]*?\bthen\b|\)\s*like\s*\(|\bselect\b[\s\S]*?\bhaving\s*\S+\s*[^\w\s]|\bif\s*\(\s*[\w\s]+[=<>~]+"), },
    Rule { id: "942240", family: Family::Sqli, paranoia: 1, severity: Critical, description: "a SQL charset switch or a time delay (waitfor delay)", kinds: INPUTS, check: Check::Pattern(View::Plain, r#"(?i)\bwaitfor\s+(?:delay|time)\b|\balter\s+table\b[\s\S]*?\b(?:change|add|modify|character\s+set)\b|\bcharacter\s+set\s+\w+|["'`]\s*;?\s*waitfor\b"#), },
    Rule { id: "942250", family: Family::Sqli, paranoia: 1, severity: Critical, description: "SQL merge, execute immediate, having", kinds: INPUTS, check: Check::Pattern(View::Plain, r"(?i)\b(?:merge\s+into|execute\s+immediate|having\s+\d\s*[=<>]|match\s*\([^)]*\)\s*against\s*\()"), },
    Rule { id: "942270", family: Family::Sqli, paranoia: 1, severity: Critical, description: "union select from", kinds: INPUTS_AND_PATH, check: Check::Pattern(View::Plain, r"(?i)union[\s\S]*?select(?:[^a-z][\s\S]*?)?from"), },
    Rule { id: "942280", family: Family::Sqli, paranoia: 1, severity: Critical, description: "pg_sleep, waitfor delay, shutdown", kinds: INPUTS, check: Check::Pattern(View::Plain, r"(?i)\bselect\s+pg_sleep\b|\bwaitfor\s+delay\b|;\s*shutdown\b|\bdatabase\s*\(\s*\)\s*\)"), },
    Rule { id: "942290", family: Family::Sqli, paranoia: 1, severity: Critical, description: "a MongoDB operator in a parameter", kinds: &[Arg, ArgName, Path], check: Check::Pattern(View::Plain, r"(?i)\[\s*\$(?:ne|eq|lte?|gte?|n?in|mod|all|size|exists|type|slice|or|and|nor|not|where|regex|elemmatch|expr|text|jsonschema)\s*\]|^\$(?:ne|eq|lte?|gte?|n?in|where|regex|expr|or|and|nor|not|elemmatch|text|exists|type|size|all|mod|slice|jsonschema)$"), },
    Rule { id: "942320", family: Family::Sqli, paranoia: 1, severity: Critical, description: "MySQL and PostgreSQL stored procedures and functions", kinds: INPUTS, check: Check::Pattern(View::Plain, r"(?i)\bprocedure\s+analyse\s*\(|\bexec(?:ute)?\s*\(\s*@|\bdeclare(?:\s|/\*.*?\*/)*@\w+|::\s*(?:int|integer|text|varchar|bigint|numeric|regclass|bytea)\b|\bcreate\s+(?:or\s+replace\s+)?(?:procedure|function)\b|\bdeclare\b[^;]*\bcursor\b|\bdo\s+\$\$|\blanguage\s+plpgsql\b"), },
    Rule { id: "942350", family: Family::Sqli, paranoia: 1, severity: Critical, description: "a stacked SQL statement that changes data or schema", kinds: INPUTS, check: Check::Pattern(View::Plain, r"(?i);(?:\s|/\*.*?\*/)*(?:insert(?:\s|/\*.*?\*/)+into|update\s+\w+\s+set|delete(?:\s|/\*.*?\*/)+from|truncate\b|drop(?:\s|/\*.*?\*/)+(?:table|database|schema|user)|alter\s+(?:table|user)|create\s+(?:table|user|database)|grant\s+)|\bcreate\s+function\b[\s\S]*?\breturns\b"), },
    Rule { id: "942360", family: Family::Sqli, paranoia: 1, severity: Critical, description: "concatenated basic SQL (select char(, as … from, union all select concat)", kinds: INPUTS, check: Check::Pattern(View::Plain, r#"(?i)\b(?:select|union(?:\s+all)?\s+select)\s*\(?\s*(?:char|chr|concat|group_concat|load_file|ascii|substring|version|null)\b|\bas\s*["'`][\w\s]*["'`]\s*from\b|["'`]\s*as\s*["'`]?\w+["'`]?\s+from\b|\b(?:select|load_file)\s*\(\s*['"]|\bcreate\s+table\b|["'`]\s*regexp\b|\b\d+\s+as\s*["']\s*from\b"#), },
    Rule { id: "942500", family: Family::Sqli, paranoia: 1, severity: Critical, description: "a MySQL inline comment or optimizer hint (/*!, /*+)", kinds: INPUTS, check: Check::Pattern(View::Plain, r"/\*\s*[!+]"), },
    Rule { id: "942540", family: Family::Sqli, paranoia: 1, severity: Critical, description: "an authentication bypass: a value closed by a quote and a semicolon", kinds: INPUTS, check: Check::Pattern(View::Plain, r#"^[\w.@+-]{1,128}["'`]\s*(?:/\*.*?\*/\s*)*;\s*(?:$|--|#|/\*)"#), },
    Rule { id: "942550", family: Family::Sqli, paranoia: 1, severity: Critical, description: "a JSON-based SQL injection (::jsonb, ->>, @>)", kinds: INPUTS_AND_PATH, check: Check::Pattern(View::Plain, r#"(?i)['"`][\[{][\s\S]*?[\]}]['"`]\s*(?:::\s*jsonb?\b|->>?|<@|@>|\?[|&]?|[<>]=?\s*['"`]\$)|::\s*jsonb?\b"#), },
    Rule { id: "942560", family: Family::Sqli, paranoia: 1, severity: Critical, description: "MySQL scientific notation hiding identifiers (1.e(…), 1.e.tables)", kinds: INPUTS, check: Check::Pattern(View::Plain, r"(?i)\b\d+\.e(?:\s*[(.,)]|\s+\w)"), },
];

/// Unix commands whose names are not everyday words: after a separator, or starting a value.
macro_rules! unix_tools {
    () => {
        r"(?:ansible(?:-[\w]+)?|chef(?:-[\w]+)?|visudo|cscli|strace|ltrace|bsdtar|cpulimit|flock|base32|base64|busybox|chmod|chown|crontab|gcc\d*[\d.]*|gdb|irb|ifconfig|ipconfig|lsof|mkfifo|ncat|netcat|netstat|nmap|nohup|nslookup|passwd|perl|php\d*|python[0-9.]*|rmt(?:-[\w]+)?|ruby|setsid|socat|sudo|systemctl|telnet|tftp|uname|useradd|wget|curl|whoami|xargs|xterm|zsh|bash|dash|ksh|tcsh|csh|openssl|xxd|awk|gawk|sed|grep|egrep|cat|tac|ls|ps|id|env|nc|sh|aptitude|apt-get|dpkg|yum|dnf|rpm|perf|ssh|scp|sftp|rsync|tcpdump|iptables|sysctl|chattr|getent|hostname|printenv)"
    };
}

/// Everyday words that are also Unix commands: only right after a separator, no space.
macro_rules! unix_words {
    () => {
        r"(?:time|trap|fold|column|bridge|find|head|tail|more|less|sort|cut|join|paste|split|watch|wait|kill|sleep|echo|printf|eval|exec|touch|rev|rm|cp|mv|ln|cd|dd|dig|host|ping|mail|tar|gzip|zip|unzip|diff|file|stat|date|who|w|set|pwd|su|vi|vim|nano|ed|od|nl|wc|tee|yes|test|expr|let|read|source|alias|export|unset|ulimit|umask|jobs|bg|fg|nice|renice|timeout|script|install|make|node|lua|go|java|strings)"
    };
}

/// A separator, then a Unix tool (with its path, if any), or an everyday-word command glued
/// to the separator.
const UNIX_AFTER_SEPARATOR: &str = concat!(
    r"(?:(?:[;&|`\n\r(]|\$\(|\|\||&&)\s*(?:[\w./-]*/)?",
    unix_tools!(),
    r"|(?:[;&|`]|\$\()(?:[\w./-]*/)?",
    unix_words!(),
    ")",
    r"(?:\s|$|[;&|<>/{])"
);

/// A value that starts with a Unix tool, or with any command followed by an option or a path.
const UNIX_AT_START: &str = concat!(
    r"^\s*(?:[\w./-]*/)?(?:",
    r"(?:ansible(?:-[\w]+)?|chef(?:-[\w]+)?|visudo|cscli|strace|ltrace|bsdtar|cpulimit|flock|base32|base64|busybox|chmod|chown|crontab|gcc\d*[\d.]*|gdb|irb|ifconfig|ipconfig|lsof|mkfifo|ncat|netcat|netstat|nmap|nohup|nslookup|passwd|perl|php\d*|python[0-9.]*|rmt(?:-[\w]+)?|ruby|setsid|socat|sudo|systemctl|telnet|tftp|uname|useradd|wget|curl|whoami|xargs|xterm|zsh|bash|dash|ksh|tcsh|csh|openssl|xxd|awk|gawk|sed|grep|egrep|tac|aptitude|apt-get|dpkg|yum|dnf|rpm|perf|ssh|scp|sftp|rsync|tcpdump|iptables|sysctl|chattr|getent|printenv)(?:\s|$)",
    r"|(?:time|trap|fold|column|bridge|find|head|tail|cat|ls|ps|id|env|nc|sh|cd|echo|printf|kill|sleep|rm|cp|mv|tar|ping|touch|stat|diff|dig|host)\s+(?:-{1,2}[a-z]|/|(?:ansible|chef|visudo|cscli|strace|ifconfig|whoami|uname|bsdtar|perf)\b))"
);

/// A path segment that starts with a dot (`/.git/config`, `/.env`, `/.claude/settings.json`):
/// hidden files hold tool configuration and secrets. `/.well-known/` is public by design.
fn hidden_path_segment(path: &str) -> bool {
    path.split(['/', '\\']).any(|segment| {
        segment.starts_with('.')
            && !matches!(segment, "." | ".." | ".well-known")
            && segment.len() > 1
            && !segment[1..].starts_with('.')
    })
}

/// A rule's own check of a value.
type Predicate = fn(&str) -> bool;

/// A compiled set of patterns and the rule each belongs to.
struct Set {
    set: RegexSet,
    rules: Vec<usize>,
}

/// Whether libinjection's SQL tokenizer could call `value` an injection: it needs more than
/// one token, so a value without whitespace, an operator, a quote, a comment or a bracket
/// (an id, an amount, a code) is not worth tokenizing (half the inspection time otherwise).
fn may_be_sqli(value: &str) -> bool {
    value.bytes().any(|b| {
        b.is_ascii_whitespace()
            || matches!(
                b,
                b'\''
                    | b'"'
                    | b'`'
                    | b';'
                    | b'('
                    | b')'
                    | b'='
                    | b'<'
                    | b'>'
                    | b'#'
                    | b'/'
                    | b'*'
                    | b'|'
                    | b'&'
                    | b'!'
                    | b'^'
                    | b'~'
                    | b'@'
                    | b'\\'
                    | b'{'
                    | b'}'
                    | b'['
                    | b']'
                    | b'+'
                    | b'%'
                    | b','
            )
    }) || value.contains("--")
}

/// `value` with every run of Hangul or CJK ideographs replaced by one `x`, for libinjection's
/// tokenizers. Such text is a word to them (never whitespace, an operator, a quote or markup:
/// those are ASCII, and the Unicode spaces libinjection knows are outside these blocks), and
/// one letter is the same word — but a shorter one, which its keyword table (a binary search
/// of 9,000 entries per word) no longer compares byte by byte. Korean memos and names are
/// most of what a Korean bank's clients write.
fn fold_hangul(value: &str) -> std::borrow::Cow<'_, str> {
    let folds = |c: char| {
        matches!(c,
            '\u{1100}'..='\u{11FF}'      // Hangul Jamo
            | '\u{3130}'..='\u{318F}'    // Hangul Compatibility Jamo
            | '\u{AC00}'..='\u{D7A3}'    // Hangul syllables
            | '\u{4E00}'..='\u{9FFF}') // CJK unified ideographs (hanja)
    };
    if value.is_ascii() || !value.chars().any(folds) {
        return std::borrow::Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut in_run = false;
    for c in value.chars() {
        if folds(c) {
            if !in_run {
                out.push('x');
            }
            in_run = true;
        } else {
            out.push(c);
            in_run = false;
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Whether libinjection's HTML tokenizer could call `value` an injection: markup, an
/// attribute, a scheme or a reference needs one of these.
fn may_be_xss(value: &str) -> bool {
    value
        .bytes()
        .any(|b| matches!(b, b'<' | b'>' | b'=' | b':' | b'&' | b'`'))
}

/// Whether no rule can match `value`: only digits (ids, amounts, timestamps — a third of what
/// a typical request carries; a test holds every rule to never matching one).
pub fn inert(value: &str) -> bool {
    value.bytes().all(|b| b.is_ascii_digit())
}

/// Where a rule is in [`RULES`].
pub fn index_of(id: &str) -> Option<usize> {
    RULES.iter().position(|r| r.id == id)
}

/// The rules active at one paranoia level, with their patterns compiled per view.
pub struct Compiled {
    plain: Set,
    html: Set,
    cmd: Set,
    /// The plain and HTML views' patterns together, for values in which decoding HTML
    /// references changes nothing (most): one scan instead of two.
    plain_and_html: Set,
    /// All three views' patterns, for values that are also their own command line (no
    /// quoting tricks): one scan instead of three.
    every_view: Set,
    functions: Vec<(usize, Predicate)>,
    sqli: Option<usize>,
    xss: Option<usize>,
    paranoia: u8,
}

impl Compiled {
    pub fn new(paranoia: u8) -> Compiled {
        let active = |r: &&Rule| r.paranoia <= paranoia;
        let compile = |views: &[View]| {
            let (patterns, indices): (Vec<String>, Vec<usize>) = RULES
                .iter()
                .enumerate()
                .filter(|(_, r)| active(r))
                .filter_map(|(i, r)| match r.check {
                    // The command-line view keeps the value's case; its rules ignore ASCII
                    // case (see `decode::cmd_line`).
                    Check::Pattern(View::Cmd, p) if views.contains(&View::Cmd) => {
                        Some((format!("(?i){p}"), i))
                    }
                    Check::Pattern(v, p) if views.contains(&v) => Some((p.to_owned(), i)),
                    _ => None,
                })
                .unzip();
            // ASCII classes and word boundaries: attack syntax is ASCII, and a Unicode `\b`
            // sends the lazy DFA back to the slow PikeVM on any non-ASCII text (Korean).
            let set = RegexSetBuilder::new(&patterns)
                .unicode(false)
                .dfa_size_limit(DFA_BYTES_MAX)
                .build()
                .expect("the WAF's rule patterns compile");
            Set {
                set,
                rules: indices,
            }
        };
        let position = |check: fn(&Check) -> bool| {
            RULES
                .iter()
                .position(|r| r.paranoia <= paranoia && check(&r.check))
        };
        let functions = RULES
            .iter()
            .enumerate()
            .filter(|(_, r)| active(r))
            .filter_map(|(i, r)| match r.check {
                Check::Function(f) => Some((i, f)),
                _ => None,
            })
            .collect();
        Compiled {
            plain: compile(&[View::Plain]),
            html: compile(&[View::Html]),
            cmd: compile(&[View::Cmd]),
            plain_and_html: compile(&[View::Plain, View::Html]),
            every_view: compile(&[View::Plain, View::Html, View::Cmd]),
            functions,
            sqli: position(|c| matches!(c, Check::Sqli)),
            xss: position(|c| matches!(c, Check::Xss)),
            paranoia,
        }
    }

    /// Runs every active rule that inspects `target`'s kind over it; `emit` gets each
    /// matching rule's index.
    pub fn check(&self, target: &Target<'_>, emit: &mut dyn FnMut(usize)) {
        let value: &str = &target.value;
        self.check_value(target.kind, value, emit);
        // A value still percent-encoded after the one decoding HTTP calls for was encoded
        // twice: inspect it decoded again.
        if value.contains('%') {
            let again = decode::url(value, true);
            if again != value {
                self.check_value(target.kind, &again, emit);
            }
        }
    }

    fn check_value(&self, kind: TargetKind, value: &str, emit: &mut dyn FnMut(usize)) {
        if inert(value) {
            return;
        }
        let applies = |i: usize| RULES[i].kinds.contains(&kind);
        let mut scan = |set: &Set, text: &str| {
            // Most values match nothing: a plain search says so without the overlapping
            // search and the per-call table of every pattern that `matches` builds.
            if !set.set.is_match(text.as_bytes()) {
                return;
            }
            for m in set.set.matches(text.as_bytes()).iter() {
                if applies(set.rules[m]) {
                    emit(set.rules[m]);
                }
            }
        };
        // Each view's rules over that view of the value, in as few scans as the views that
        // differ from the value allow.
        use std::borrow::Cow::{Borrowed, Owned};
        match (decode::html(value), decode::cmd_line(value)) {
            (Borrowed(_), Borrowed(_)) => scan(&self.every_view, value),
            (Borrowed(_), Owned(cmd)) => {
                scan(&self.plain_and_html, value);
                scan(&self.cmd, &cmd);
            }
            (Owned(html), cmd) => {
                scan(&self.plain, value);
                scan(&self.html, &html);
                scan(&self.cmd, &cmd);
            }
        }
        for &(i, function) in &self.functions {
            if applies(i) && function(value) {
                emit(i);
            }
        }
        let sqli = self.sqli.filter(|&i| applies(i) && may_be_sqli(value));
        let xss = self.xss.filter(|&i| applies(i) && may_be_xss(value));
        if sqli.is_none() && xss.is_none() {
            return;
        }
        let folded = fold_hangul(value);
        if let Some(i) = sqli
            && self.is_sqli(folded.as_bytes())
        {
            emit(i);
        }
        if let Some(i) = xss
            && libinjectionrs::detect_xss(folded.as_bytes()).is_injection()
        {
            emit(i);
        }
    }

    fn is_sqli(&self, value: &[u8]) -> bool {
        // `libinjectionrs::detect_sqli` is this and then the fingerprint computed once more
        // (a third of its time); after `detect` the state holds the fingerprint that matched.
        let mut state = libinjectionrs::SqliState::new(value, libinjectionrs::SqliFlags::FLAG_NONE);
        state.detect()
            && (self.paranoia > 1 || !WEAK_SQLI.contains(&state.fingerprint_string().as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hangul_runs_fold_to_one_letter_and_nothing_else_changes() {
        assert_eq!(
            fold_hangul("O'Brien 님 11월 월세 (관리비 포함) - 감사합니다! #7"),
            "O'Brien x 11x x (x x) - x! #7"
        );
        assert_eq!(fold_hangul("漢字와 한글"), "x x");
        assert!(matches!(
            fold_hangul("plain ascii"),
            std::borrow::Cow::Borrowed(_)
        ));
        // Other non-ASCII text, and the spaces libinjection knows (U+00A0), stay as they are.
        assert_eq!(fold_hangul("café\u{a0}1"), "café\u{a0}1");
        // Attacks wrapped in Korean are still attacks.
        let engine = Compiled::new(1);
        for attack in [
            "김철수' OR '1'='1",
            "1 UNION SELECT 비밀번호 FROM 사용자--",
            "<img src=x onerror=alert(1)>안녕",
        ] {
            let mut hits = Vec::new();
            engine.check_value(TargetKind::Arg, attack, &mut |i| hits.push(RULES[i].id));
            assert!(!hits.is_empty(), "{attack} passed");
        }
    }

    /// `check_value` skips values of digits only; this holds every rule to never matching one.
    #[test]
    fn no_rule_matches_a_value_of_digits_only() {
        let values = [
            "0",
            "7",
            "42",
            "1250000",
            "4294967296",
            "18446744073709551616",
            "1700000000000000000001",
        ];
        for rule in RULES {
            for value in values {
                let matched = match rule.check {
                    Check::Pattern(view, pattern) => {
                        let text = match view {
                            View::Plain | View::Html => value.to_owned(),
                            View::Cmd => decode::cmd_line(value).into_owned(),
                        };
                        regex::bytes::RegexBuilder::new(pattern)
                            .unicode(false)
                            .build()
                            .unwrap()
                            .is_match(text.as_bytes())
                    }
                    Check::Function(f) => f(value),
                    Check::Sqli => libinjectionrs::detect_sqli(value.as_bytes()).is_injection(),
                    Check::Xss => libinjectionrs::detect_xss(value.as_bytes()).is_injection(),
                    Check::Framing => false,
                };
                assert!(!matched, "rule {} matches {value}", rule.id);
            }
        }
    }

    #[test]
    fn rule_ids_are_unique_and_every_pattern_compiles_at_every_level() {
        let mut ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), RULES.len());
        for paranoia in 1..=4 {
            Compiled::new(paranoia);
        }
    }
}
