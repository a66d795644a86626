//! Who may do what: the permission every route needs ([`ROUTES`], one table that the docs
//! render and a test walks for every role), and the permissions each [`Role`] grants.
//!
//! Deny by default: a `/v1/…` request whose method and path the table does not name needs an
//! authenticated caller and reaches the router only to be told `404`/`405`; a route the table
//! names needs its permission. The services check the finer rules themselves (a customer's
//! registration number unmasked only with `customers:unmask`, …) from the permissions the
//! edge passes on, so the two layers say the same thing twice and a mistake in one is caught
//! by the other.

use std::collections::BTreeSet;

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials (health, readiness, the API description).
    Public,
    /// Any authenticated caller (who am I).
    Authenticated,
    /// An authenticated caller holding this permission.
    Permission(&'static str),
    /// A caller holding `all` (every record), or a customer holding `own` (their own records
    /// only: the gate passes the customer on and the service narrows what it answers).
    Own {
        /// The permission over everyone's records.
        all: &'static str,
        /// The permission over the caller's own.
        own: &'static str,
    },
}

impl Access {
    /// How a holder of `permissions` gets through: fully, only for their own records (a
    /// customer), or not at all.
    pub fn grant(self, permissions: &BTreeSet<&'static str>, customer: bool) -> Grant {
        match self {
            Access::Public | Access::Authenticated => Grant::Full,
            Access::Permission(p) if permissions.contains(p) => Grant::Full,
            Access::Own { all, .. } if permissions.contains(all) => Grant::Full,
            Access::Own { own, .. } if customer && permissions.contains(own) => Grant::Own,
            _ => Grant::None,
        }
    }

    /// What a role gets (a `customer` key always names its customer).
    pub fn grant_to(self, role: Role) -> Grant {
        let permissions: BTreeSet<&'static str> = role.permissions().iter().copied().collect();
        self.grant(&permissions, role == Role::Customer)
    }
}

/// How far a route lets a caller in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// Everything the route serves.
    Full,
    /// The caller's own records only.
    Own,
    /// Nothing: `403`.
    None,
}

/// One route: method, path pattern (`{name}` matches one non-empty segment), what it needs.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    /// `GET`, `POST`, …
    pub method: &'static str,
    /// The path pattern, as the service's router and the OpenAPI document spell it.
    pub path: &'static str,
    /// What a caller needs.
    pub access: Access,
}

const fn public(method: &'static str, path: &'static str) -> Route {
    Route {
        method,
        path,
        access: Access::Public,
    }
}

const fn own(
    method: &'static str,
    path: &'static str,
    all: &'static str,
    own: &'static str,
) -> Route {
    Route {
        method,
        path,
        access: Access::Own { all, own },
    }
}

const fn needs(method: &'static str, path: &'static str, permission: &'static str) -> Route {
    Route {
        method,
        path,
        access: Access::Permission(permission),
    }
}

/// Every route Gureum serves and what it needs.
#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    public("GET", "/healthz"),
    public("GET", "/readyz"),
    public("GET", "/v1/openapi.json"),
    Route { method: "GET", path: "/v1/auth/whoami", access: Access::Authenticated },
    needs("POST", "/v1/auth/api-keys", "auth:keys"),
    needs("GET", "/v1/auth/api-keys", "auth:keys"),
    needs("DELETE", "/v1/auth/api-keys/{id}", "auth:keys"),
    needs("GET", "/v1/audit/events", "audit:read"),
    needs("GET", "/v1/guard/findings", "guard:read"),
    needs("GET", "/v1/guard/blocks", "guard:read"),
    needs("DELETE", "/v1/guard/blocks/{subject}", "guard:respond"),

    needs("POST", "/v1/ledger/accounts", "ledger:write"),
    needs("POST", "/v1/ledger/transfers", "ledger:write"),
    needs("GET", "/v1/ledger/accounts/{id}", "ledger:read"),
    needs("GET", "/v1/ledger/transfers/{id}", "ledger:read"),
    needs("GET", "/v1/ledger/accounts/{id}/transfers", "ledger:read"),
    needs("GET", "/v1/ledger/accounts/{id}/balances", "ledger:read"),

    needs("POST", "/v1/customers", "customers:write"),
    needs("GET", "/v1/customers", "customers:read"),
    needs("POST", "/v1/customers/search", "customers:read"),
    own("GET", "/v1/customers/{id}", "customers:read", "customers:read:own"),
    needs("PATCH", "/v1/customers/{id}", "customers:write"),
    needs("DELETE", "/v1/customers/{id}", "customers:erase"),
    needs("POST", "/v1/customers/{id}/kyc", "customers:write"),
    needs("GET", "/v1/customers/{id}/kyc", "customers:read"),
    own("GET", "/v1/customers/{id}/consents", "customers:read", "customers:read:own"),
    needs("PUT", "/v1/customers/{id}/consents/{purpose}", "customers:write"),
    needs("GET", "/v1/customers/{id}/access-log", "customers:audit"),
    needs("GET", "/v1/customers/{id}/export", "customers:unmask"),

    needs("POST", "/v1/products", "products:manage"),
    needs("GET", "/v1/products", "products:read"),
    needs("GET", "/v1/products/{code}", "products:read"),
    needs("GET", "/v1/products/{code}/rate", "products:read"),
    needs("POST", "/v1/products/{code}/versions", "products:manage"),
    needs("GET", "/v1/products/{code}/versions/{version}", "products:read"),
    needs("PUT", "/v1/products/{code}/versions/{version}", "products:manage"),
    needs("POST", "/v1/products/{code}/versions/{version}/publish", "products:manage"),
    needs("POST", "/v1/products/{code}/versions/{version}/retire", "products:manage"),

    needs("POST", "/v1/deposits", "deposits:write"),
    own("GET", "/v1/deposits", "deposits:read", "deposits:read:own"),
    needs("POST", "/v1/deposits/eod", "deposits:eod"),
    own("GET", "/v1/deposits/{id}", "deposits:read", "deposits:read:own"),
    needs("POST", "/v1/deposits/{id}/deposit", "deposits:write"),
    needs("POST", "/v1/deposits/{id}/withdraw", "deposits:write"),
    needs("POST", "/v1/deposits/{id}/transfer", "deposits:write"),
    needs("POST", "/v1/deposits/{id}/holds", "deposits:write"),
    needs("POST", "/v1/deposits/{id}/holds/{hold_id}/capture", "deposits:write"),
    needs("POST", "/v1/deposits/{id}/holds/{hold_id}/release", "deposits:write"),
    needs("POST", "/v1/deposits/{id}/close", "deposits:write"),
    own("GET", "/v1/deposits/{id}/statement", "deposits:read", "deposits:read:own"),

    needs("POST", "/v1/contracts", "contracts:write"),
    needs("GET", "/v1/contracts", "contracts:read"),
    needs("GET", "/v1/contracts/{id}", "contracts:read"),
    needs("GET", "/v1/contracts/{id}/document", "contracts:read"),
    needs("POST", "/v1/contracts/{id}/signatures", "contracts:write"),
    needs("POST", "/v1/contracts/{id}/cancel", "contracts:write"),

    needs("POST", "/v1/credit/evaluations", "credit:evaluate"),
    needs("GET", "/v1/credit/evaluations/{id}", "credit:read"),
    needs("POST", "/v1/credit/evaluations/{id}/replay", "credit:read"),

    needs("POST", "/v1/loans/quote", "loans:quote"),
    needs("POST", "/v1/loans/applications", "credit:evaluate"),
    needs("GET", "/v1/loans/applications", "credit:read"),
    needs("GET", "/v1/loans/applications/{id}", "credit:read"),
    needs("POST", "/v1/loans/applications/{id}/decision", "credit:decide"),
    needs("GET", "/v1/loans/applications/{id}/offer", "loans:read"),
    needs("POST", "/v1/loans/applications/{id}/accept", "loans:originate"),
    own("GET", "/v1/loans", "loans:read", "loans:read:own"),
    needs("POST", "/v1/loans/eod", "loans:eod"),
    needs("GET", "/v1/loans/collections", "loans:collect"),
    own("GET", "/v1/loans/{id}", "loans:read", "loans:read:own"),
    own("GET", "/v1/loans/{id}/schedule", "loans:read", "loans:read:own"),
    own("GET", "/v1/loans/{id}/payoff", "loans:read", "loans:read:own"),
    needs("POST", "/v1/loans/{id}/disburse", "loans:originate"),
    needs("POST", "/v1/loans/{id}/repayments", "loans:repay"),
    needs("POST", "/v1/loans/{id}/prepayments", "loans:repay"),
    needs("POST", "/v1/loans/{id}/restructure", "loans:manage"),
    needs("POST", "/v1/loans/{id}/write-off", "loans:manage"),
    needs("POST", "/v1/loans/{id}/promises", "loans:collect"),
    needs("POST", "/v1/loans/{id}/contacts", "loans:collect"),
];

/// A role: a named set of permissions an API key (or a token's claim) is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// A bank's customer: the catalogue and loan quotes. (Their own records — accounts,
    /// loans, profile — need ownership checks the services do not make yet: see SECURITY.md.)
    Customer,
    /// Branch and contact-centre staff: customers (with real-name verification, i.e.
    /// unmasking), deposits, contracts, repayments.
    Teller,
    /// Credit: evaluations, applications, decisions on referred ones, origination.
    LoanOfficer,
    /// Risk and collections: evaluations read and replayed, the collections queue,
    /// restructuring and write-off.
    RiskAnalyst,
    /// Read-only over everything, including access logs, the audit trail and findings;
    /// never unmasked regulated data.
    Auditor,
    /// Everything, including API keys, product management and end of day.
    Admin,
    /// Gureum's own services calling each other through the edge in the split shape (deposits
    /// and lending moving money on the ledger, reading customers and products, issuing
    /// contracts). Given only to the service key (`GUREUM_SERVICE_KEY`), never to a person.
    Service,
}

impl Role {
    /// Every role, in the order the docs list them.
    pub const ALL: [Role; 7] = [
        Role::Customer,
        Role::Teller,
        Role::LoanOfficer,
        Role::RiskAnalyst,
        Role::Auditor,
        Role::Admin,
        Role::Service,
    ];

    /// The role's name (`loan_officer`, …).
    pub fn name(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Teller => "teller",
            Role::LoanOfficer => "loan_officer",
            Role::RiskAnalyst => "risk_analyst",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
            Role::Service => "service",
        }
    }

    /// The role named `name`.
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The permissions the role grants.
    pub fn permissions(self) -> &'static [&'static str] {
        match self {
            Role::Customer => &[
                "products:read",
                "loans:quote",
                "customers:read:own",
                "deposits:read:own",
                "loans:read:own",
            ],
            Role::Teller => &[
                "ledger:read",
                "customers:read",
                "customers:write",
                "customers:unmask",
                "products:read",
                "deposits:read",
                "deposits:write",
                "contracts:read",
                "contracts:write",
                "loans:quote",
                "loans:read",
                "loans:repay",
            ],
            Role::LoanOfficer => &[
                "customers:read",
                "products:read",
                "deposits:read",
                "contracts:read",
                "contracts:write",
                "credit:evaluate",
                "credit:read",
                "credit:decide",
                "loans:quote",
                "loans:read",
                "loans:originate",
            ],
            Role::RiskAnalyst => &[
                "ledger:read",
                "customers:read",
                "products:read",
                "deposits:read",
                "credit:read",
                "loans:quote",
                "loans:read",
                "loans:collect",
                "loans:manage",
            ],
            Role::Auditor => &[
                "ledger:read",
                "customers:read",
                "customers:audit",
                "products:read",
                "deposits:read",
                "contracts:read",
                "credit:read",
                "loans:read",
                "audit:read",
                "guard:read",
            ],
            Role::Admin => PERMISSIONS,
            Role::Service => &[
                "ledger:read",
                "ledger:write",
                "customers:read",
                "products:read",
                "deposits:read",
                "deposits:write",
                "contracts:read",
                "contracts:write",
            ],
        }
    }
}

/// Every permission there is.
pub const PERMISSIONS: &[&str] = &[
    "auth:keys",
    "audit:read",
    "guard:read",
    "guard:respond",
    "ledger:read",
    "ledger:write",
    "customers:read",
    "customers:read:own",
    "customers:write",
    "customers:unmask",
    "customers:erase",
    "customers:audit",
    "products:read",
    "products:manage",
    "deposits:read",
    "deposits:read:own",
    "deposits:write",
    "deposits:eod",
    "contracts:read",
    "contracts:write",
    "credit:evaluate",
    "credit:read",
    "credit:decide",
    "loans:quote",
    "loans:read",
    "loans:read:own",
    "loans:originate",
    "loans:repay",
    "loans:manage",
    "loans:collect",
    "loans:eod",
];

/// The permissions a set of roles grants together.
pub fn permissions_of(roles: &[Role]) -> BTreeSet<&'static str> {
    roles
        .iter()
        .flat_map(|r| r.permissions().iter().copied())
        .collect()
}

/// What `method` on `path` needs, or `None` if no route serves it.
/// When two patterns match (`/v1/loans/collections`, `/v1/loans/{id}`), the one with fewer
/// `{…}` segments wins, as in the routers.
pub fn route(method: &str, path: &str) -> Option<&'static Route> {
    // Every request asks: the patterns are split once, and only those of the method and
    // the path's segment count are compared.
    static INDEX: std::sync::LazyLock<Vec<Compiled>> = std::sync::LazyLock::new(|| {
        ROUTES
            .iter()
            .map(|route| Compiled {
                route,
                segments: route
                    .path
                    .split('/')
                    .map(|s| (!s.starts_with('{')).then_some(s))
                    .collect(),
                params: route.path.matches('{').count(),
            })
            .collect()
    });
    let mut segments = [""; SEGMENTS_MAX];
    let mut count = 0;
    for segment in path.split('/') {
        if count == SEGMENTS_MAX {
            return None;
        }
        segments[count] = segment;
        count += 1;
    }
    let have = &segments[..count];
    INDEX
        .iter()
        .filter(|c| c.route.method == method && c.segments.len() == count)
        .filter(|c| {
            c.segments.iter().zip(have).all(|(want, have)| match want {
                Some(literal) => literal == have,
                None => !have.is_empty(),
            })
        })
        .min_by_key(|c| c.params)
        .map(|c| c.route)
}

/// No route has more segments than this.
const SEGMENTS_MAX: usize = 12;

struct Compiled {
    route: &'static Route,
    /// `None` for a `{…}` segment.
    segments: Vec<Option<&'static str>>,
    params: usize,
}

/// The route table as Markdown, one row per route, one column per role (✓ = allowed, own =
/// the caller's own records only): what docs/SECURITY.md shows.
pub fn render_markdown() -> String {
    let mut out = String::from("| Method | Path | Needs |");
    for role in Role::ALL {
        out.push_str(&format!(" {} |", role.name()));
    }
    out.push_str("\n|---|---|---|");
    for _ in Role::ALL {
        out.push_str(":-:|");
    }
    out.push('\n');
    for r in ROUTES {
        let needs = match r.access {
            Access::Public => "public".to_owned(),
            Access::Authenticated => "any key".to_owned(),
            Access::Permission(p) => format!("`{p}`"),
            Access::Own { all, own } => format!("`{all}`, or `{own}` for one's own"),
        };
        out.push_str(&format!("| {} | `{}` | {needs} |", r.method, r.path));
        for role in Role::ALL {
            out.push_str(match r.access.grant_to(role) {
                Grant::Full => " ✓ |",
                Grant::Own => " own |",
                Grant::None => " |",
            });
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_their_patterns_segment_by_segment() {
        let path = |method, p| route(method, p).map(|r| r.path);
        assert_eq!(path("GET", "/v1/loans/7"), Some("/v1/loans/{id}"));
        assert_eq!(path("GET", "/v1/loans/"), None);
        assert_eq!(
            path("GET", "/v1/loans/7/schedule"),
            Some("/v1/loans/{id}/schedule")
        );
        assert_eq!(path("GET", "/v1/loans/7/schedule/x"), None);
        assert_eq!(path("GET", "/v1/loans"), Some("/v1/loans"));
        assert_eq!(path("GET", &"/a".repeat(40)), None);
        // Every route is found from a path of its own shape.
        for r in ROUTES {
            let concrete = r
                .path
                .replace("{id}", "x1")
                .replace("{code}", "x1")
                .replace("{version}", "1")
                .replace("{purpose}", "x1")
                .replace("{hold_id}", "x1");
            assert_eq!(
                route(r.method, &concrete).map(|f| f.path),
                Some(r.path),
                "{concrete}"
            );
            assert!(r.path.split('/').count() <= SEGMENTS_MAX);
        }
        assert_eq!(
            route("GET", "/v1/loans/collections").unwrap().access,
            Access::Permission("loans:collect")
        );
        assert_eq!(
            route("GET", "/v1/loans/7").unwrap().access,
            Access::Own {
                all: "loans:read",
                own: "loans:read:own"
            }
        );
        assert!(route("DELETE", "/v1/loans/7").is_none());
    }

    #[test]
    fn the_table_names_each_route_once_and_only_known_permissions() {
        let mut seen = BTreeSet::new();
        for r in ROUTES {
            assert!(
                seen.insert((r.method, r.path)),
                "{} {} twice",
                r.method,
                r.path
            );
            match r.access {
                Access::Permission(p) => {
                    assert!(PERMISSIONS.contains(&p), "{p} is not in PERMISSIONS")
                }
                Access::Own { all, own } => {
                    assert!(PERMISSIONS.contains(&all), "{all} is not in PERMISSIONS");
                    assert_eq!(own, format!("{all}:own"));
                    assert!(PERMISSIONS.contains(&own), "{own} is not in PERMISSIONS");
                    assert_eq!(r.method, "GET", "own records are only read");
                }
                Access::Public | Access::Authenticated => {}
            }
        }
        for role in Role::ALL {
            for p in role.permissions() {
                assert!(
                    PERMISSIONS.contains(p),
                    "{} grants unknown {p}",
                    role.name()
                );
            }
            assert_eq!(Role::from_name(role.name()), Some(role));
        }
    }

    #[test]
    fn a_customer_reads_its_own_records_and_nothing_else_of_anyone() {
        for r in ROUTES {
            let grant = r.access.grant_to(Role::Customer);
            let own = matches!(r.access, Access::Own { .. });
            match grant {
                Grant::Own => assert!(own, "{} {}", r.method, r.path),
                Grant::Full => assert!(
                    matches!(r.access, Access::Public | Access::Authenticated)
                        || [
                            "/v1/products",
                            "/v1/products/{code}",
                            "/v1/products/{code}/rate",
                            "/v1/products/{code}/versions/{version}",
                            "/v1/loans/quote"
                        ]
                        .contains(&r.path),
                    "a customer may not see all of {} {}",
                    r.method,
                    r.path
                ),
                Grant::None => assert!(!own, "{} {}", r.method, r.path),
            }
        }
        // A key without a customer holding only own permissions gets nothing.
        let own: BTreeSet<&'static str> = ["loans:read:own"].into();
        let access = route("GET", "/v1/loans/7").unwrap().access;
        assert_eq!(access.grant(&own, false), Grant::None);
        assert_eq!(access.grant(&own, true), Grant::Own);
    }

    #[test]
    fn the_auditor_reads_and_never_writes_or_unmasks() {
        let auditor = Role::Auditor.permissions();
        for p in auditor {
            assert!(
                p.ends_with(":read") || p.ends_with(":audit"),
                "auditor holds {p}"
            );
        }
        assert!(!auditor.contains(&"customers:unmask"));
    }
}
