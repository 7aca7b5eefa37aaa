//! The floors of the benchmark harness (`bench/run.sh`): what the same HTTP stack costs
//! with nothing on top, and with exactly one ES256 signature or verification per request.
//! moneykit-auth's figures are judged against these, measured in the same run, with the
//! same requests (the harness sends each floor the headers and body it sends the real
//! endpoint), so a ratio isolates what moneykit-auth does beyond the crypto.
//!
//! `bench-floor 127.0.0.1:PORT [KEY.pk8]` serves:
//! - `GET /hello`: a fixed body (the HTTP floor);
//! - `POST /sign`: reads the body, signs one JWT (aws-lc-rs, key parsed once) and returns
//!   it in a token-response-sized JSON body;
//! - `GET /verify`: verifies the ES256 signature of the `Authorization: Bearer` JWT
//!   (public key parsed once);
//! - `POST /verify-sign`: verifies the ES256 signature of the request's `DPoP` header, or
//!   without one of the body's `client_assertion`, under the public half of `KEY.pk8`,
//!   then signs a JWT as `/sign` does: the floor of a `private_key_jwt` or DPoP token
//!   request.
//!
//! And two commands that prepare a `private_key_jwt` run:
//! - `bench-floor keygen DIR`: a P-256 key (`DIR/key.pk8`) and its JWKS (`DIR/jwks.json`);
//! - `bench-floor assertions DIR CLIENT_ID AUDIENCE COUNT LIFETIME_SECS`: COUNT token
//!   request bodies (`DIR/assertions.txt`, one per line), each with a fresh client
//!   assertion signed by `DIR/key.pk8`;
//! - `bench-floor proofs DIR HTU COUNT`: COUNT DPoP proofs (`DIR/proofs.txt`, one per line)
//!   for `POST HTU`, each with a fresh `jti`, signed by `DIR/key.pk8` with its public key
//!   in the header;
//! - `bench-floor forged DIR CLIENT_ID AUDIENCE COUNT`: COUNT bodies (`DIR/flood.txt`) whose
//!   assertions name a random unknown client id (even lines) or CLIENT_ID with a random
//!   unknown `kid` (odd lines), signed by nothing: a flood the server must refuse without
//!   remembering any of it.

use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    ParsedPublicKey,
};
use axum::Router;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A signing input the size of a real access token's header and claims.
const SIGNING_INPUT: &str = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImtleV9jNDc4ZTkyNWExNWViYTY4IiwidHlwIjoiYXQrand0In0.eyJpc3MiOiJodHRwOi8vMTI3LjAuMC4xOjE4MDgwIiwic3ViIjoibGl2ZV9mYTM0NTdjOTQ1M2Y2ZWFlNmM2MDI4NzgiLCJjbGllbnRfaWQiOiJsaXZlX2ZhMzQ1N2M5NDUzZjZlYWU2YzYwMjg3OCIsImFwcF9pZCI6ImFwcF9iM2I0M2ZlNjBlNWFiNzkzN2Q5YjdkN2YiLCJzY29wZSI6ImFjY291bnRzOnJlYWQgdHJhbnNhY3Rpb25zOnJlYWQiLCJpYXQiOjE3OTU3MjY1OTMsImV4cCI6MTc5NTczMDE5MywianRpIjoiYTA2MzExZjk2NGM0NWUxNWUzNzRmMTg5NDE4ZmZhNjcifQ";

struct Keys {
    pair: EcdsaKeyPair,
    public: ParsedPublicKey,
    /// The public half of the clients' key (`KEY.pk8`), for `/verify-sign`.
    client: ParsedPublicKey,
    rng: SystemRandom,
}

fn parse_pair(pkcs8: &[u8]) -> EcdsaKeyPair {
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).unwrap()
}

fn public_of(pair: &EcdsaKeyPair) -> ParsedPublicKey {
    ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref()).unwrap()
}

/// Verifies the ES256 signature of a compact JWT under `key`.
fn verify_jwt(key: &ParsedPublicKey, jwt: &str) -> bool {
    let Some((input, sig)) = jwt.rsplit_once('.') else {
        return false;
    };
    let Ok(sig) = URL_SAFE_NO_PAD.decode(sig) else {
        return false;
    };
    key.verify_sig(input.as_bytes(), &sig).is_ok()
}

/// The `client_assertion` of a form body (JWTs need no percent-decoding).
fn client_assertion(body: &[u8]) -> &str {
    let body = std::str::from_utf8(body).unwrap_or_default();
    body.split('&')
        .find_map(|pair| pair.strip_prefix("client_assertion="))
        .unwrap_or_default()
}

/// `bench-floor keygen DIR`.
fn keygen(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    std::fs::write(dir.join("key.pk8"), pkcs8.as_ref()).unwrap();
    let point = parse_pair(pkcs8.as_ref()).public_key().as_ref().to_vec();
    let jwks = format!(
        r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"bench","x":"{}","y":"{}"}}]}}"#,
        URL_SAFE_NO_PAD.encode(&point[1..33]),
        URL_SAFE_NO_PAD.encode(&point[33..])
    );
    std::fs::write(dir.join("jwks.json"), jwks).unwrap();
}

/// `bench-floor assertions DIR CLIENT_ID AUDIENCE COUNT LIFETIME_SECS`.
fn assertions(dir: &Path, client_id: &str, audience: &str, count: usize, lifetime: u64) {
    use std::io::Write;
    let pair = parse_pair(&std::fs::read(dir.join("key.pk8")).unwrap());
    let rng = SystemRandom::new();
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","kid":"bench","typ":"JWT"}"#);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let file = std::fs::File::create(dir.join("assertions.txt")).unwrap();
    let mut out = std::io::BufWriter::new(file);
    for n in 0..count {
        let claims = format!(
            r#"{{"iss":"{client_id}","sub":"{client_id}","aud":"{audience}","iat":{now},"exp":{},"jti":"bench-{now}-{n}"}}"#,
            now + lifetime
        );
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
        let sig = pair.sign(&rng, input.as_bytes()).unwrap();
        writeln!(
            out,
            "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={input}.{}",
            URL_SAFE_NO_PAD.encode(sig.as_ref())
        )
        .unwrap();
    }
}

impl Keys {
    fn jwt(&self) -> String {
        let sig = self.pair.sign(&self.rng, SIGNING_INPUT.as_bytes()).unwrap();
        format!("{SIGNING_INPUT}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    fn verify(&self, jwt: &str) -> bool {
        verify_jwt(&self.public, jwt)
    }

    fn token_response(&self) -> String {
        format!(
            "{{\"access_token\":\"{}\",\"token_type\":\"bearer\",\"expires_in\":3600,\"scope\":\"accounts:read transactions:read\"}}",
            self.jwt()
        )
    }
}

/// `bench-floor proofs DIR HTU COUNT`.
fn proofs(dir: &Path, htu: &str, count: usize) {
    use std::io::Write;
    let pair = parse_pair(&std::fs::read(dir.join("key.pk8")).unwrap());
    let rng = SystemRandom::new();
    let point = pair.public_key().as_ref();
    let header = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}}}"#,
        URL_SAFE_NO_PAD.encode(&point[1..33]),
        URL_SAFE_NO_PAD.encode(&point[33..])
    ));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let file = std::fs::File::create(dir.join("proofs.txt")).unwrap();
    let mut out = std::io::BufWriter::new(file);
    for n in 0..count {
        let claims =
            format!(r#"{{"jti":"bench-{now}-{n}","htm":"POST","htu":"{htu}","iat":{now}}}"#);
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
        let sig = pair.sign(&rng, input.as_bytes()).unwrap();
        writeln!(out, "{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())).unwrap();
    }
}

/// `bench-floor forged DIR CLIENT_ID AUDIENCE COUNT`.
fn forged(dir: &Path, client_id: &str, audience: &str, count: usize) {
    use std::io::Write;
    let rng = SystemRandom::new();
    let random_hex = |n: usize| {
        let mut bytes = vec![0u8; n];
        aws_lc_rs::rand::SecureRandom::fill(&rng, &mut bytes).unwrap();
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let file = std::fs::File::create(dir.join("flood.txt")).unwrap();
    let mut out = std::io::BufWriter::new(file);
    for n in 0..count {
        let (sub, kid) = if n % 2 == 0 {
            (format!("live_{}", random_hex(12)), "bench".to_owned())
        } else {
            (client_id.to_owned(), format!("forged-{}", random_hex(8)))
        };
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#));
        let claims = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"iss":"{sub}","sub":"{sub}","aud":"{audience}","exp":4102444800,"jti":"{}"}}"#,
            random_hex(16)
        ));
        let signature = URL_SAFE_NO_PAD.encode(random_hex(32));
        writeln!(
            out,
            "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={header}.{claims}.{signature}"
        )
        .unwrap();
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["keygen", dir] => return keygen(Path::new(dir)),
        ["assertions", dir, client_id, audience, count, lifetime] => {
            return assertions(
                Path::new(dir),
                client_id,
                audience,
                count.parse().unwrap(),
                lifetime.parse().unwrap(),
            );
        }
        ["proofs", dir, htu, count] => {
            return proofs(Path::new(dir), htu, count.parse().unwrap());
        }
        ["forged", dir, client_id, audience, count] => {
            return forged(Path::new(dir), client_id, audience, count.parse().unwrap());
        }
        _ => {}
    }
    let addr = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = parse_pair(pkcs8.as_ref());
    let public = public_of(&pair);
    let client = match args.get(1) {
        Some(path) => public_of(&parse_pair(&std::fs::read(path).unwrap())),
        None => public_of(&pair),
    };
    let keys = Arc::new(Keys {
        pair,
        public,
        client,
        rng,
    });
    let assertion_keys = keys.clone();

    let sign_keys = keys.clone();
    let app = Router::new()
        .route("/hello", get(|| async { "{\"status\":\"ok\"}" }))
        .route(
            "/sign",
            post(move |_body: axum::body::Bytes| {
                let keys = sign_keys.clone();
                async move { keys.token_response() }
            }),
        )
        .route(
            "/verify-sign",
            post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let keys = assertion_keys.clone();
                    async move {
                        let signed = match headers.get("dpop").and_then(|v| v.to_str().ok()) {
                            Some(proof) => proof,
                            None => client_assertion(&body),
                        };
                        if verify_jwt(&keys.client, signed) {
                            Ok(keys.token_response())
                        } else {
                            Err(axum::http::StatusCode::UNAUTHORIZED)
                        }
                    }
                },
            ),
        )
        .route(
            "/verify",
            get(move |headers: axum::http::HeaderMap| {
                let keys = keys.clone();
                async move {
                    let token = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer "))
                        .unwrap_or("");
                    if keys.verify(token) {
                        "{\"active\":true}"
                    } else {
                        "{\"active\":false}"
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    eprintln!(
        "bench-floor listening on {}",
        listener.local_addr().unwrap()
    );
    axum::serve(listener, app).await.unwrap();
}
