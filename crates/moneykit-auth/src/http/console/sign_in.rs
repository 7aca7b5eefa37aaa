//! Signing in (with the bootstrap admin token, or an access token this server issued to
//! an admin-scoped client) and out.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::session::{Credential, same};
use super::{NAV, Page, html};
use crate::domain::audit::Outcome;
use crate::http::admin_access;
use crate::http::extract::ClientAddr;
use crate::http::state::AdminState;
use crate::operations::audit::{self, Grants};
use crate::operations::{Actor, Via};

/// The audit action of a refused sign-in.
pub const SIGN_IN: &str = "console.sign_in";

/// Longest credential accepted in the form (an access token is well under this).
const MAX_CREDENTIAL_LEN: usize = 8 * 1024;

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignIn<'a> {
    csrf: &'a str,
    error: Option<&'a str>,
}

/// The sign-in form, with a fresh form token and its cookie.
pub(super) async fn page(State(state): State<Arc<AdminState>>) -> Page {
    form(&state, StatusCode::OK, None)
}

fn form(state: &AdminState, status: StatusCode, error: Option<&str>) -> Page {
    let (csrf, cookie) = state.console.sign_in_form();
    let mut response = html(status, &SignIn { csrf: &csrf, error })?;
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

#[derive(Deserialize)]
pub(super) struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

/// Checks the credential as the admin API would, and opens a session for it.
pub(super) async fn submit(
    State(state): State<Arc<AdminState>>,
    source: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Page {
    let source = source.and_then(|Extension(addr)| addr.0);
    if let Err(wait) = state.console.sign_in_allowed(source) {
        let mut response = form_with(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many failed sign-ins from your address. Try again in {wait} s."),
        )?;
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, wait.into());
        return Ok(response);
    }
    if !state.console.sign_in_form_matches(&headers, &form.csrf) {
        return form_with(
            &state,
            StatusCode::FORBIDDEN,
            "This sign-in form is out of date or did not come from this console. Try again.",
        );
    }
    let token = form.token.trim().to_owned();
    let identified = match token.len() {
        0 => Err("missing_token"),
        n if n > MAX_CREDENTIAL_LEN => Err("malformed"),
        _ => admin_access::identify(&state, token.clone(), "GET", "/console/sign-in", source)
            .await
            .map_err(|(reason, _)| reason),
    };
    let actor = match identified {
        Ok(actor) => actor,
        Err(reason) => {
            state.console.sign_in_failed(source);
            tracing::info!(
                reason,
                client = source.map(tracing::field::display),
                "console sign-in failed"
            );
            if state.refusals.take() {
                let mut actor = Actor::anonymous().at(source, None);
                actor.via = Via::Console;
                let detail = format!("authentication failed: {reason}");
                let store = state.store.as_ref();
                audit::append(
                    store,
                    &actor,
                    SIGN_IN,
                    None,
                    None,
                    Outcome::Refused,
                    Some(&detail),
                )
                .await;
            }
            return form_with(
                &state,
                StatusCode::UNAUTHORIZED,
                "That is neither the admin token nor a valid access token of this server.",
            );
        }
    };
    let first_page = NAV
        .iter()
        .find(|(_, _, area)| area.permits(&actor.grants, false).is_ok())
        .map(|(key, _, _)| *key);
    let Some(first_page) = first_page else {
        return form_with(
            &state,
            StatusCode::FORBIDDEN,
            "This token holds no admin scope (admin:read, admin:apps, admin:clients, admin:keys, admin:webhooks).",
        );
    };
    // The bootstrap token is not kept; an access token is, to be checked on every request.
    let credential = match actor.grants {
        Grants::Everything => Credential::AdminToken,
        Grants::Scopes(_) => Credential::AccessToken(token),
    };
    tracing::info!(actor = %actor.name, "console sign-in");
    let mut response = Redirect::to(&format!("/console/{first_page}")).into_response();
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, state.console.open(credential));
    headers.append(header::SET_COOKIE, state.console.sign_in_form_used());
    Ok(response)
}

fn form_with(state: &AdminState, status: StatusCode, error: &str) -> Page {
    form(state, status, Some(error))
}

#[derive(Deserialize)]
pub(super) struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

/// Ends the session (its form carries the session's CSRF token, so another site cannot
/// sign anyone out).
pub(super) async fn sign_out(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Response {
    let mut response = Redirect::to("/console/sign-in").into_response();
    if let Some(session) = state.console.current(&headers)
        && same(&form.csrf, &session.csrf)
    {
        let cleared = state.console.close(&session.key);
        response.headers_mut().append(header::SET_COOKIE, cleared);
    }
    response
}
