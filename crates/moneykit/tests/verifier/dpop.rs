//! `verify_request`: DPoP-bound tokens with their proofs (RFC 9449 §4.3, §7.1), and
//! certificate-bound tokens against the client certificate (RFC 8705 §3). Every refusal,
//! one at a time, from a request that is accepted.

use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use moneykit::{
    AccessTokenVerifier, DpopKey, DpopProofError, Jwk, ResourceRequest, TokenError,
    certificate_thumbprint, jwk_thumbprint,
};
use serde_json::{Value, json};

use crate::support::*;

const HOST: &str = "api.example.test";
const URL: &str = "http://api.example.test/accounts";

/// The proof's public key, as a proof header carries it: without kid, alg or use.
fn public_jwk(key: &Signer) -> Value {
    let mut jwk = serde_json::to_value(key.jwk()).unwrap();
    for member in ["kid", "alg", "use"] {
        jwk.as_object_mut().unwrap().remove(member);
    }
    jwk
}

fn thumbprint(key: &Signer) -> String {
    let jwk: Jwk = serde_json::from_value(public_jwk(key)).unwrap();
    jwk_thumbprint(&jwk).unwrap()
}

fn ath(token: &str) -> String {
    b64(digest(&SHA256, token.as_bytes()).as_ref())
}

/// A token bound by `cnf`, signed by the issuer's key.
fn bound_token(issuer: &Signer, cnf: Value) -> String {
    let mut claims = claims();
    claims["cnf"] = cnf;
    issuer.sign(&issuer.header(), &claims)
}

/// A unique jti per call.
fn jti() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("jti-{n}")
}

/// The header and claims of a proof that holds for `GET URL` with `token`, at [`NOW`].
fn proof_parts(key: &Signer, token: &str) -> (Value, Value) {
    let header = json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(key) });
    let claims = json!({
        "jti": jti(), "htm": "GET", "htu": URL, "iat": NOW, "ath": ath(token),
    });
    (header, claims)
}

struct Case {
    verifier: AccessTokenVerifier,
    issuer: Signer,
    key: Signer,
    token: String,
}

impl Case {
    fn new() -> Self {
        Self::with(AccessTokenVerifier::builder(ISSUER, AUDIENCE))
    }

    fn with(builder: moneykit::AccessTokenVerifierBuilder) -> Self {
        let issuer = Signer::new("key_1");
        let key = Signer::new("dpop");
        let token = bound_token(&issuer, json!({ "jkt": thumbprint(&key) }));
        Self {
            verifier: builder.build_with_jwks(&issuer.jwks()),
            issuer,
            key,
            token,
        }
    }

    /// A proof of this case's key with `change` applied to its header and claims.
    fn proof(&self, change: impl FnOnce(&mut Value, &mut Value)) -> String {
        let (mut header, mut claims) = proof_parts(&self.key, &self.token);
        change(&mut header, &mut claims);
        self.key.sign(&header, &claims)
    }

    /// `GET /accounts` with these `Authorization` and `DPoP` headers, verified at [`NOW`].
    async fn send(&self, authorization: &str, proofs: &[&str]) -> Result<(), TokenError> {
        self.send_to(
            &Method::GET,
            "/accounts?limit=5",
            authorization,
            proofs,
            None,
        )
        .await
    }

    async fn send_to(
        &self,
        method: &Method,
        uri: &str,
        authorization: &str,
        proofs: &[&str],
        certificate: Option<&[u8]>,
    ) -> Result<(), TokenError> {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static(HOST));
        headers.insert("authorization", authorization.parse().unwrap());
        for proof in proofs {
            headers.append("dpop", proof.parse().unwrap());
        }
        let uri: Uri = uri.parse().unwrap();
        let mut request = ResourceRequest::new(method, &uri, &headers);
        if let Some(der) = certificate {
            request = request.client_certificate(der);
        }
        self.verifier
            .verify_request_at(&request, NOW)
            .await
            .map(|_| ())
    }

    async fn refusal(&self, change: impl FnOnce(&mut Value, &mut Value)) -> TokenError {
        let proof = self.proof(change);
        self.send(&format!("DPoP {}", self.token), &[&proof])
            .await
            .unwrap_err()
    }
}

fn proof_error(e: TokenError) -> DpopProofError {
    match e {
        TokenError::InvalidDpopProof(e) => e,
        other => panic!("not a proof refusal: {other:?}"),
    }
}

#[tokio::test]
async fn a_bound_token_with_its_proof_is_accepted() {
    let case = Case::new();
    let proof = case.proof(|_, _| {});
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static(HOST));
    headers.insert(
        "authorization",
        format!("dpop {}", case.token).parse().unwrap(),
    );
    headers.insert("dpop", proof.parse().unwrap());
    let uri: Uri = "/accounts".parse().unwrap();
    let request = ResourceRequest::new(&Method::GET, &uri, &headers);
    let token = case
        .verifier
        .verify_request_at(&request, NOW)
        .await
        .unwrap();
    assert_eq!(token.client_id(), "live_client");
    assert_eq!(
        token.dpop_thumbprint(),
        Some(thumbprint(&case.key).as_str())
    );
    assert_eq!(token.certificate_thumbprint(), None);
    // The window is inclusive at both ends.
    for iat in [NOW - 60, NOW + 60] {
        let proof = case.proof(|_, claims| claims["iat"] = json!(iat));
        assert!(
            case.send(&format!("DPoP {}", case.token), &[&proof])
                .await
                .is_ok()
        );
    }
}

#[tokio::test]
async fn proofs_for_another_request_are_refused() {
    let case = Case::new();
    let e = case.refusal(|_, c| c["htm"] = json!("POST")).await;
    assert_eq!(proof_error(e), DpopProofError::WrongMethod);
    for htu in [
        "http://api.example.test/other",
        "https://api.example.test/accounts",
        "http://api.example.test:8080/accounts",
        "http://evil.example/accounts",
        "/accounts",
    ] {
        let e = case.refusal(|_, c| c["htu"] = json!(htu)).await;
        assert_eq!(proof_error(e), DpopProofError::WrongUrl, "{htu}");
    }
    // Scheme and host in any case, the default port and a query are the same URL.
    for htu in [
        "HTTP://API.Example.TEST/accounts",
        "http://api.example.test:80/accounts?limit=1#x",
    ] {
        let proof = case.proof(|_, c| c["htu"] = json!(htu));
        assert!(
            case.send(&format!("DPoP {}", case.token), &[&proof])
                .await
                .is_ok(),
            "{htu}"
        );
    }
}

#[tokio::test]
async fn proofs_out_of_their_window_are_refused() {
    let case = Case::new();
    let e = case.refusal(|_, c| c["iat"] = json!(NOW - 61)).await;
    assert_eq!(proof_error(e), DpopProofError::Stale);
    let e = case.refusal(|_, c| c["iat"] = json!(NOW + 61)).await;
    assert_eq!(proof_error(e), DpopProofError::IssuedInFuture);

    let narrow = Case::with(
        AccessTokenVerifier::builder(ISSUER, AUDIENCE).dpop_proof_window(Duration::from_secs(10)),
    );
    let e = narrow.refusal(|_, c| c["iat"] = json!(NOW - 11)).await;
    assert_eq!(proof_error(e), DpopProofError::Stale);
}

#[tokio::test]
async fn a_proof_is_accepted_once() {
    let case = Case::new();
    let proof = case.proof(|_, _| {});
    let authorization = format!("DPoP {}", case.token);
    assert!(case.send(&authorization, &[&proof]).await.is_ok());
    let e = case.send(&authorization, &[&proof]).await.unwrap_err();
    assert_eq!(proof_error(e), DpopProofError::Replayed);
}

#[tokio::test]
async fn a_full_replay_cache_refuses_rather_than_forgets() {
    let case = Case::with(AccessTokenVerifier::builder(ISSUER, AUDIENCE).dpop_replay_capacity(1));
    let authorization = format!("DPoP {}", case.token);
    assert!(
        case.send(&authorization, &[&case.proof(|_, _| {})])
            .await
            .is_ok()
    );
    let e = case
        .send(&authorization, &[&case.proof(|_, _| {})])
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::DpopReplayCacheFull), "{e:?}");
}

#[tokio::test]
async fn the_access_token_hash_must_be_there_and_right() {
    let case = Case::new();
    let e = case
        .refusal(|_, c| {
            c.as_object_mut().unwrap().remove("ath");
        })
        .await;
    assert_eq!(proof_error(e), DpopProofError::MissingAccessTokenHash);
    let e = case
        .refusal(|_, c| c["ath"] = json!(ath("another token")))
        .await;
    assert_eq!(proof_error(e), DpopProofError::WrongAccessTokenHash);
}

#[tokio::test]
async fn proofs_that_do_not_prove_possession_are_refused() {
    let case = Case::new();
    let stranger = Signer::new("stranger");

    // Signed by another key than the jwk it carries.
    let (header, claims) = proof_parts(&case.key, &case.token);
    let forged = stranger.sign(&header, &claims);
    let e = case
        .send(&format!("DPoP {}", case.token), &[&forged])
        .await
        .unwrap_err();
    assert_eq!(proof_error(e), DpopProofError::BadSignature);

    // A jwk with its private key.
    let e = case.refusal(|h, _| h["jwk"]["d"] = json!("c2VjcmV0")).await;
    assert_eq!(proof_error(e), DpopProofError::PrivateKey);

    // A symmetric key, no signature at all, another typ.
    let e = case.refusal(|h, _| h["alg"] = json!("HS256")).await;
    assert_eq!(
        proof_error(e),
        DpopProofError::UnsupportedAlgorithm("HS256".into())
    );
    let (mut header, claims) = proof_parts(&case.key, &case.token);
    header["alg"] = json!("none");
    let unsigned = format!(
        "{}.{}.",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let e = case
        .send(&format!("DPoP {}", case.token), &[&unsigned])
        .await
        .unwrap_err();
    assert_eq!(
        proof_error(e),
        DpopProofError::UnsupportedAlgorithm("none".into())
    );
    let e = case.refusal(|h, _| h["typ"] = json!("JWT")).await;
    assert_eq!(proof_error(e), DpopProofError::WrongType);
    // An algorithm that does not fit the key.
    let e = case.refusal(|h, _| h["alg"] = json!("ES384")).await;
    assert!(matches!(proof_error(e), DpopProofError::InvalidKey(_)));
    let e = case
        .refusal(|h, _| {
            h.as_object_mut().unwrap().remove("jwk");
        })
        .await;
    assert!(matches!(proof_error(e), DpopProofError::Malformed(_)));
}

#[tokio::test]
async fn a_proof_by_another_key_than_the_tokens_is_refused() {
    let case = Case::new();
    let other = Signer::new("other");
    let (header, claims) = proof_parts(&other, &case.token);
    let proof = other.sign(&header, &claims);
    let e = case
        .send(&format!("DPoP {}", case.token), &[&proof])
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::DpopKeyMismatch), "{e:?}");
}

#[tokio::test]
async fn the_scheme_and_the_proof_headers_must_fit_the_token() {
    let case = Case::new();
    let proof = case.proof(|_, _| {});
    // A DPoP-bound token as a bearer token, proof or not, and through `verify`.
    let e = case
        .send(&format!("Bearer {}", case.token), &[&proof])
        .await;
    assert!(matches!(e, Err(TokenError::DpopBound)), "{e:?}");
    let e = case.verifier.verify_at(&case.token, NOW).await.unwrap_err();
    assert!(matches!(e, TokenError::DpopBound), "{e:?}");
    // No proof, or two.
    let authorization = format!("DPoP {}", case.token);
    let e = case.send(&authorization, &[]).await.unwrap_err();
    assert_eq!(proof_error(e), DpopProofError::Missing);
    let e = case
        .send(&authorization, &[&proof, &case.proof(|_, _| {})])
        .await
        .unwrap_err();
    assert_eq!(proof_error(e), DpopProofError::Several);
    // A token that is not DPoP-bound, with the DPoP scheme.
    let bearer = case.issuer.token();
    let e = case.send(&format!("DPoP {bearer}"), &[&proof]).await;
    assert!(matches!(e, Err(TokenError::NotDpopBound)), "{e:?}");
    // ... and as the bearer token it is.
    assert!(case.send(&format!("Bearer {bearer}"), &[]).await.is_ok());
    let e = case.send("Basic bGl2ZTpzZWNyZXQ=", &[]).await.unwrap_err();
    assert!(matches!(e, TokenError::MissingToken), "{e:?}");
}

#[tokio::test]
async fn the_public_url_is_what_proofs_name() {
    let case = Case::with(
        AccessTokenVerifier::builder(ISSUER, AUDIENCE)
            .public_url("https://API.example.test/v1/")
            .unwrap(),
    );
    let authorization = format!("DPoP {}", case.token);
    let public = "https://api.example.test/v1/accounts";
    let proof = case.proof(|_, c| c["htu"] = json!(public));
    assert!(case.send(&authorization, &[&proof]).await.is_ok());
    // The Host header no longer counts.
    let e = case.refusal(|_, _| {}).await;
    assert_eq!(proof_error(e), DpopProofError::WrongUrl);
    assert!(
        AccessTokenVerifier::builder(ISSUER, AUDIENCE)
            .public_url("api.example.test")
            .is_err()
    );
}

#[tokio::test]
async fn a_proof_made_by_the_sdk_is_accepted_on_the_clock() {
    let issuer = Signer::new("key_1");
    let key = DpopKey::generate().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut claims = claims();
    claims["iat"] = json!(now);
    claims["exp"] = json!(now + 300);
    claims["cnf"] = json!({ "jkt": key.thumbprint() });
    let token = issuer.sign(&issuer.header(), &claims);
    let verifier = AccessTokenVerifier::builder(ISSUER, AUDIENCE)
        .public_url("https://api.example.test")
        .unwrap()
        .build_with_jwks(&issuer.jwks());
    let url = "https://api.example.test/accounts/acc_1?expand=balances";
    let proof = key.proof("PATCH", url, Some(&token), None).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("authorization", format!("DPoP {token}").parse().unwrap());
    headers.insert("dpop", proof.parse().unwrap());
    let uri: Uri = "/accounts/acc_1?expand=balances".parse().unwrap();
    let request = ResourceRequest::new(&Method::PATCH, &uri, &headers);
    let verified = verifier.verify_request(&request).await.unwrap();
    assert_eq!(verified.dpop_thumbprint(), Some(key.thumbprint()));
}

#[tokio::test]
async fn a_certificate_bound_token_needs_its_certificate() {
    let case = Case::new();
    let certificate = b"the DER of the client's certificate";
    let token = bound_token(
        &case.issuer,
        json!({ "x5t#S256": certificate_thumbprint(certificate) }),
    );
    let bearer = format!("Bearer {token}");
    let send = |der: Option<&'static [u8]>| {
        let bearer = bearer.clone();
        let case = &case;
        async move {
            case.send_to(&Method::GET, "/accounts", &bearer, &[], der)
                .await
        }
    };
    assert!(send(Some(certificate)).await.is_ok());
    assert!(matches!(
        send(None).await,
        Err(TokenError::CertificateRequired)
    ));
    assert!(matches!(
        send(Some(b"another certificate")).await,
        Err(TokenError::CertificateMismatch)
    ));
    let e = case.verifier.verify_at(&token, NOW).await.unwrap_err();
    assert!(matches!(e, TokenError::CertificateRequired), "{e:?}");

    // Bound to a DPoP key as well: both must hold.
    let both = bound_token(
        &case.issuer,
        json!({ "x5t#S256": certificate_thumbprint(certificate), "jkt": thumbprint(&case.key) }),
    );
    let (header, mut claims) = proof_parts(&case.key, &both);
    claims["htu"] = json!("http://api.example.test/accounts");
    let proof = case.key.sign(&header, &claims);
    let authorization = format!("DPoP {both}");
    let e = case
        .send_to(&Method::GET, "/accounts", &authorization, &[&proof], None)
        .await;
    assert!(matches!(e, Err(TokenError::CertificateRequired)), "{e:?}");
    let proof = case.key.sign(&header, &{
        claims["jti"] = json!(jti());
        claims
    });
    let ok = case
        .send_to(
            &Method::GET,
            "/accounts",
            &authorization,
            &[&proof],
            Some(certificate),
        )
        .await;
    assert!(ok.is_ok(), "{ok:?}");
}

#[tokio::test]
async fn unknown_confirmation_methods_are_refused() {
    let case = Case::new();
    for cnf in [json!({ "jwk": { "kty": "EC" } }), json!({})] {
        let token = bound_token(&case.issuer, cnf);
        let e = case.verifier.verify_at(&token, NOW).await.unwrap_err();
        assert!(matches!(e, TokenError::UnsupportedConfirmation), "{e:?}");
    }
}
