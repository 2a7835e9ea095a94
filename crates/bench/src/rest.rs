//! Setting up what a benchmark measures through the API itself: one kept-alive digest
//! connection ([`Api`]) whose every call must answer an expected status, and the
//! usual fixture (a group, a replica set with encryption on).
//!
//! An unexpected answer is an error that carries the method, the path, the status and
//! the start of the body ([`RestError::Status`]), so a run aborts saying what the
//! server said.

use std::net::SocketAddr;

use serde_json::Value;

use crate::digest::{DigestClient, DigestError, Exchange};
use crate::http::{Connection, HttpError, Response};

/// Characters of a response body quoted in error messages.
const QUOTED_BODY: usize = 400;

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// The transport failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The digest exchange failed.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// The server answered another status than expected.
    #[error("{method} {uri} on {addr}: expected {expected}, {}", describe(.response))]
    Status {
        /// Request method.
        method: String,
        /// Request target.
        uri: String,
        /// The server.
        addr: SocketAddr,
        /// The status expected.
        expected: u16,
        /// What came back.
        response: Box<Response>,
    },
    /// The body is not the JSON expected.
    #[error("{method} {uri} on {addr}: {what}")]
    Body {
        /// Request method.
        method: String,
        /// Request target.
        uri: String,
        /// The server.
        addr: SocketAddr,
        /// What was wrong.
        what: String,
    },
}

/// `answered STATUS BODY...` (the first `QUOTED_BODY` characters), for messages.
pub fn describe(r: &Response) -> String {
    let body = String::from_utf8_lossy(&r.body);
    let cut: String = body.chars().take(QUOTED_BODY).collect();
    format!("answered {} {cut}", r.status)
}

/// One digest-authenticated keep-alive connection to one server.
pub struct Api {
    conn: Connection,
    digest: DigestClient,
}

impl Api {
    /// Connects to `addr` as `username` with `api_key`.
    pub async fn connect(
        addr: SocketAddr,
        username: &str,
        api_key: &str,
    ) -> Result<Api, RestError> {
        Ok(Api {
            conn: Connection::connect(addr).await?,
            digest: DigestClient::new(username, api_key),
        })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.conn.addr()
    }

    /// Sends `method uri` with a JSON `body` (none when empty) and returns the
    /// response, which must have status `expected`.
    pub async fn raw(
        &mut self,
        method: &str,
        uri: &str,
        body: &str,
        expected: u16,
    ) -> Result<Response, RestError> {
        Ok(self.exchange(method, uri, body, expected).await?.response)
    }

    /// [`raw`](Self::raw), with the round trip's time and the 401 round trips it took
    /// (first nonce, stale nonces).
    pub async fn exchange(
        &mut self,
        method: &str,
        uri: &str,
        body: &str,
        expected: u16,
    ) -> Result<Exchange, RestError> {
        if !self.conn.is_open() {
            self.conn = Connection::connect(self.conn.addr()).await?;
        }
        let headers: &[(&str, &str)] = if body.is_empty() {
            &[]
        } else {
            &[("Content-Type", "application/json")]
        };
        let ex = self
            .digest
            .send(&mut self.conn, method, uri, headers, body.as_bytes())
            .await?;
        if ex.response.status != expected {
            return Err(RestError::Status {
                method: method.into(),
                uri: uri.into(),
                addr: self.conn.addr(),
                expected,
                response: Box::new(ex.response),
            });
        }
        Ok(ex)
    }

    /// [`raw`](Self::raw), with the body parsed as JSON.
    pub async fn call(
        &mut self,
        method: &str,
        uri: &str,
        body: &str,
        expected: u16,
    ) -> Result<Value, RestError> {
        let response = self.raw(method, uri, body, expected).await?;
        serde_json::from_slice(&response.body).map_err(|e| self.body_error(method, uri, e))
    }

    /// The string field `field` of the JSON answer to `method uri`.
    pub async fn call_for(
        &mut self,
        method: &str,
        uri: &str,
        body: &str,
        expected: u16,
        field: &str,
    ) -> Result<String, RestError> {
        let v = self.call(method, uri, body, expected).await?;
        match v[field].as_str() {
            Some(s) => Ok(s.to_string()),
            None => Err(self.body_error(method, uri, format!("no string {field:?} in {v}"))),
        }
    }

    /// Creates a group named `name`; returns its id.
    pub async fn create_group(&mut self, name: &str) -> Result<String, RestError> {
        let body = serde_json::json!({ "name": name }).to_string();
        self.call_for("POST", "/api/public/v1.0/groups", &body, 201, "id")
            .await
    }

    /// Registers a replica set `name` in `group` and turns its backup encryption on;
    /// returns the cluster's id.
    pub async fn encrypted_replica_set(
        &mut self,
        group: &str,
        name: &str,
    ) -> Result<String, RestError> {
        let body = serde_json::json!({
            "clusterName": name,
            "typeName": "REPLICA_SET",
            "replicaSetName": name,
        })
        .to_string();
        let uri = format!("/api/public/v1.0/groups/{group}/clusters");
        let cluster = self.call_for("POST", &uri, &body, 201, "id").await?;
        let uri = format!("/api/public/v1.0/groups/{group}/backupConfigs/{cluster}");
        self.call("PATCH", &uri, r#"{"encryptionEnabled":true}"#, 200)
            .await?;
        Ok(cluster)
    }

    /// A group named `group_name` holding one replica set `name` with its backup
    /// encryption on; returns the ids of the group and the cluster.
    pub async fn encrypted_cluster(
        &mut self,
        group_name: &str,
        name: &str,
    ) -> Result<(String, String), RestError> {
        let group = self.create_group(group_name).await?;
        let cluster = self.encrypted_replica_set(&group, name).await?;
        Ok((group, cluster))
    }

    fn body_error(&self, method: &str, uri: &str, what: impl std::fmt::Display) -> RestError {
        RestError::Body {
            method: method.into(),
            uri: uri.into(),
            addr: self.conn.addr(),
            what: what.to_string(),
        }
    }
}

/// The path of a cluster's `encryptionKey` resource.
pub fn encryption_key_uri(group: &str, cluster: &str) -> String {
    format!("/api/public/v1.0/groups/{group}/backupConfigs/{cluster}/encryptionKey")
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    /// Answers `POST /api/public/v1.0/groups` with `status` and `body`.
    async fn server(status: StatusCode, body: &'static str) -> SocketAddr {
        let app = axum::Router::new().route(
            "/api/public/v1.0/groups",
            axum::routing::post(move || async move { (status, body) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    #[tokio::test]
    async fn accepts_created_group_and_returns_its_id() {
        let addr = server(StatusCode::CREATED, r#"{"id":"5f0c0ffee0c0ffee0c0ffee0"}"#).await;
        let mut api = Api::connect(addr, "u", "k").await.unwrap();
        assert_eq!(
            api.create_group("g").await.unwrap(),
            "5f0c0ffee0c0ffee0c0ffee0"
        );
    }

    #[tokio::test]
    async fn rejects_other_status_quoting_the_error_body() {
        let addr = server(
            StatusCode::CONFLICT,
            r#"{"errorCode":"DUPLICATE_GROUP_NAME"}"#,
        )
        .await;
        let mut api = Api::connect(addr, "u", "k").await.unwrap();
        let e = api.create_group("g").await.unwrap_err();
        let text = e.to_string();
        assert!(
            matches!(&e, RestError::Status { expected: 201, response, .. } if response.status == 409),
            "{text}"
        );
        assert!(text.contains("DUPLICATE_GROUP_NAME"), "{text}");
    }

    #[tokio::test]
    async fn rejects_answer_without_the_field() {
        let addr = server(StatusCode::CREATED, r#"{"name":"g"}"#).await;
        let mut api = Api::connect(addr, "u", "k").await.unwrap();
        let e = api.create_group("g").await.unwrap_err();
        assert!(
            matches!(&e, RestError::Body { what, .. } if what.contains("\"id\"")),
            "{e}"
        );
        let addr = server(StatusCode::CREATED, "not json").await;
        let mut api = Api::connect(addr, "u", "k").await.unwrap();
        let e = api.create_group("g").await.unwrap_err();
        assert!(matches!(e, RestError::Body { .. }), "{e}");
    }
}
