//! The audit trail, newest first, filtered and a page at a time.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Extension, Query, State};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Frame, Page, Signed, given, html, split, unavailable};
use crate::domain::audit::{AuditFilter, AuditRecord};
use crate::domain::time::rfc3339;
use crate::http::state::AdminState;
use crate::operations::AdminError;
use crate::operations::audit::{self, parse_cursor};

/// Records per page.
const PAGE: u32 = 50;

#[derive(Deserialize, Default)]
pub(super) struct Filter {
    since: Option<String>,
    until: Option<String>,
    target: Option<String>,
    actor: Option<String>,
    cursor: Option<String>,
}

impl Filter {
    fn parse(&self) -> Result<AuditFilter, AdminError> {
        let time = |name: &str, field: &Option<String>| {
            given(field)
                .map(|text| {
                    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
                        AdminError::Invalid(format!("{name}: {text:?} is not an RFC 3339 time"))
                    })
                })
                .transpose()
        };
        Ok(AuditFilter {
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            target: given(&self.target).map(str::to_owned),
            actor: given(&self.actor).map(str::to_owned),
            before_seq: given(&self.cursor).map(parse_cursor).transpose()?,
            limit: PAGE,
        })
    }

    /// The query string of the next page: these filters and `cursor`.
    fn next(&self, cursor: &str) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, field) in [
            ("since", &self.since),
            ("until", &self.until),
            ("target", &self.target),
            ("actor", &self.actor),
        ] {
            if let Some(value) = given(field) {
                query.append_pair(name, value);
            }
        }
        query.append_pair("cursor", cursor);
        query.finish()
    }
}

/// A record as a row.
struct Row {
    at: String,
    actor: String,
    via: String,
    source: String,
    action: String,
    target: String,
    outcome: &'static str,
    changes: String,
    detail: String,
}

impl Row {
    fn of(r: AuditRecord) -> Self {
        Self {
            at: rfc3339(r.at),
            actor: r.actor,
            via: r.via,
            source: r.source.unwrap_or_default(),
            action: r.action,
            target: r.target.unwrap_or_default(),
            outcome: r.outcome.as_str(),
            changes: r.changes.unwrap_or_default(),
            detail: r.detail.unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    frame: Frame,
    records: Vec<Row>,
    filter: Filter,
    next: Option<String>,
}

pub(super) async fn page(
    State(state): State<Arc<AdminState>>,
    Extension(signed): Extension<Signed>,
    Query(filter): Query<Filter>,
) -> Page {
    let (records, next, error) = match filter.parse() {
        Ok(parsed) => {
            let (records, next) = audit::list(state.store.as_ref(), &parsed)
                .await
                .map_err(unavailable)?;
            let rows = records.into_iter().map(Row::of).collect();
            (rows, next.map(|cursor| filter.next(&cursor)), None)
        }
        Err(error) => (Vec::new(), None, Some(error)),
    };
    let (status, error) = split(error);
    let page = AuditPage {
        frame: Frame::new(&state, &signed, "audit", error),
        records,
        filter,
        next,
    };
    html(status, &page)
}
