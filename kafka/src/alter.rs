//! Setting topic configs on a topic that exists: Kafka's `IncrementalAlterConfigs` (API key
//! 44, version 0), which librdkafka's Rust binding does not wrap (it has only the legacy
//! `AlterConfigs`, which the embedded broker does not serve). One request, one response, on
//! a plain TCP connection to a bootstrap server: the broker that owns topic configs in a
//! single-node cluster (the embedded broker) or any broker of a KRaft cluster (it forwards).
use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const API_KEY: i16 = 44;
const API_VERSION: i16 = 0;
const RESOURCE_TOPIC: i8 = 2;
const OP_SET: i8 = 0;

/// Why the configs could not be set.
#[derive(Debug, thiserror::Error)]
pub enum AlterError {
    /// The connection or the exchange failed.
    #[error("talking to {server}: {source}")]
    Io {
        /// The server.
        server: String,
        /// What happened.
        #[source]
        source: std::io::Error,
    },
    /// The broker did not answer in time.
    #[error("{server} did not answer within {timeout:?}")]
    Timeout {
        /// The server.
        server: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// The answer is not an IncrementalAlterConfigs response.
    #[error("unreadable answer from {server}: {detail}")]
    Protocol {
        /// The server.
        server: String,
        /// What was wrong.
        detail: String,
    },
    /// The broker refused the change for a topic.
    #[error("the broker refused the configs of {topic}: error code {code}{}", .message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Refused {
        /// The topic.
        topic: String,
        /// Kafka's error code.
        code: i16,
        /// Kafka's message.
        message: Option<String>,
    },
}

/// Sets `configs` on each topic (only the keys given; others keep their values).
pub async fn set_topic_configs(
    server: &str,
    topics: &[(String, Vec<(String, String)>)],
    timeout: Duration,
) -> Result<(), AlterError> {
    let io = |source| AlterError::Io {
        server: server.to_string(),
        source,
    };
    let exchange = async {
        let mut stream = TcpStream::connect(server).await.map_err(io)?;
        let request = encode_request(7, "drover-admin", topics);
        stream.write_all(&request).await.map_err(io)?;
        let len = stream.read_i32().await.map_err(io)?;
        let len = usize::try_from(len).map_err(|_| AlterError::Protocol {
            server: server.to_string(),
            detail: format!("negative frame length {len}"),
        })?;
        let mut body = vec![0; len];
        stream.read_exact(&mut body).await.map_err(io)?;
        Ok::<_, AlterError>(body)
    };
    let body = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| AlterError::Timeout {
            server: server.to_string(),
            timeout,
        })??;
    let answers = decode_response(&body).map_err(|detail| AlterError::Protocol {
        server: server.to_string(),
        detail,
    })?;
    for (topic, code, message) in answers {
        if code != 0 {
            return Err(AlterError::Refused {
                topic,
                code,
                message,
            });
        }
    }
    Ok(())
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as i16).to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// The framed request (size prefix, header v1, body v0).
fn encode_request(
    correlation_id: i32,
    client_id: &str,
    topics: &[(String, Vec<(String, String)>)],
) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&API_KEY.to_be_bytes());
    b.extend_from_slice(&API_VERSION.to_be_bytes());
    b.extend_from_slice(&correlation_id.to_be_bytes());
    put_str(&mut b, client_id);
    b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for (topic, configs) in topics {
        b.push(RESOURCE_TOPIC as u8);
        put_str(&mut b, topic);
        b.extend_from_slice(&(configs.len() as i32).to_be_bytes());
        for (name, value) in configs {
            put_str(&mut b, name);
            b.push(OP_SET as u8);
            put_str(&mut b, value);
        }
    }
    b.push(0); // validate_only = false
    let mut framed = (b.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&b);
    framed
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err(format!("truncated: wanted {n} more bytes"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn i8(&mut self) -> Result<i8, String> {
        Ok(self.take(1)?[0] as i8)
    }
    fn i16(&mut self) -> Result<i16, String> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32, String> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn nullable_str(&mut self) -> Result<Option<String>, String> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let b = self.take(len as usize)?;
        Ok(Some(String::from_utf8_lossy(b).into_owned()))
    }
}

/// `(topic, error code, message)` per resource of a response body (after the size prefix).
fn decode_response(body: &[u8]) -> Result<Vec<(String, i16, Option<String>)>, String> {
    let mut r = Reader(body);
    let _correlation_id = r.i32()?;
    let _throttle_ms = r.i32()?;
    let n = r.i32()?;
    let mut out = Vec::new();
    for _ in 0..n.max(0) {
        let code = r.i16()?;
        let message = r.nullable_str()?.filter(|m| !m.is_empty());
        let _resource_type = r.i8()?;
        let name = r.nullable_str()?.unwrap_or_default();
        out.push((name, code, message));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_framed_as_kafka_expects() {
        let req = encode_request(
            7,
            "c",
            &[("t".into(), vec![("retention.ms".into(), "1000".into())])],
        );
        let len = i32::from_be_bytes(req[..4].try_into().unwrap()) as usize;
        assert_eq!(len, req.len() - 4);
        assert_eq!(&req[4..6], &44i16.to_be_bytes());
        assert_eq!(&req[6..8], &0i16.to_be_bytes());
        assert_eq!(&req[8..12], &7i32.to_be_bytes());
        assert_eq!(&req[12..15], &[0, 1, b'c']);
        assert_eq!(&req[15..19], &1i32.to_be_bytes(), "one resource");
        assert_eq!(req[19], 2, "a topic");
        assert_eq!(*req.last().unwrap(), 0, "validate_only false");
    }

    #[test]
    fn responses_are_read_per_topic() {
        let mut b = Vec::new();
        b.extend_from_slice(&7i32.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&2i32.to_be_bytes());
        for (code, name) in [(0i16, "a"), (40i16, "b")] {
            b.extend_from_slice(&code.to_be_bytes());
            b.extend_from_slice(&(-1i16).to_be_bytes());
            b.push(2);
            put_str(&mut b, name);
        }
        let got = decode_response(&b).unwrap();
        assert_eq!(got, vec![("a".into(), 0, None), ("b".into(), 40, None)]);
        assert!(decode_response(&b[..9]).is_err());
    }
}
