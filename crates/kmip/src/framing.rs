//! Message framing on a byte stream: KMIP has no framing of its own, a message is one
//! TTLV Structure whose 8-byte header (3-byte tag, 1-byte type, 4-byte big-endian
//! length) tells how many bytes follow.
//!
//! [`read_message`] reads exactly one message using only that header, bounded by a
//! maximum size checked *before* anything is allocated, so a peer announcing a 4 GiB
//! message costs us 8 bytes of reading. Decoding the body is [`crate::ttlv`]'s job.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::Error;
use crate::tag::Tag;
use crate::ttlv::{self, DecodeError, DecodeErrorKind, TagPath};

/// Size of a TTLV item header: tag (3), type (1), length (4).
pub const HEADER_LEN: usize = 8;

/// TTLV item type code of a Structure (KMIP 1.x section 9.1.1.2).
const STRUCTURE: u8 = 0x01;

/// Reads one whole TTLV message (header included) from `reader`.
///
/// Returns `Ok(None)` when the stream ends cleanly before the first header byte (the
/// peer closed the connection between messages). Errors: see [`check_header`]; a
/// stream that ends inside the message is [`Error::Io`] with `UnexpectedEof`.
pub async fn read_message<R>(reader: &mut R, max_len: usize) -> Result<Option<Vec<u8>>, Error>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let mut header = [0u8; HEADER_LEN];
    let mut filled = 0;
    while filled < HEADER_LEN {
        let n = reader
            .read(&mut header[filled..])
            .await
            .map_err(|e| Error::io("reading a message header", e))?;
        if n == 0 {
            if filled == 0 {
                return Ok(None);
            }
            return Err(Error::io(
                "reading a message header",
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("stream ended after {filled} of {HEADER_LEN} header bytes"),
                ),
            ));
        }
        filled += n;
    }
    let body_len = check_header(&header, max_len)?;
    let mut message = Vec::with_capacity(HEADER_LEN + body_len);
    message.extend_from_slice(&header);
    message.resize(HEADER_LEN + body_len, 0);
    reader
        .read_exact(&mut message[HEADER_LEN..])
        .await
        .map_err(|e| Error::io("reading a message body", e))?;
    Ok(Some(message))
}

/// Checks a message header and returns the body length it announces: the outer item
/// must be a Structure ([`Error::Frame`]) whose length is plausible
/// ([`crate::ttlv::message_length`]) and within `max_len` bytes in all
/// ([`Error::Decode`] with [`DecodeErrorKind::TooLarge`]).
pub fn check_header(header: &[u8; HEADER_LEN], max_len: usize) -> Result<usize, Error> {
    let item_type = header[3];
    if item_type != STRUCTURE {
        return Err(Error::Frame {
            reason: format!(
                "outer item type is 0x{item_type:02x}, a message must be a Structure (0x01)"
            ),
        });
    }
    let total = ttlv::message_length(header)?;
    if total > max_len {
        let tag = Tag(u32::from_be_bytes([0, header[0], header[1], header[2]]));
        return Err(Error::Decode(DecodeError {
            offset: 0,
            path: TagPath(vec![tag]),
            kind: DecodeErrorKind::TooLarge {
                length: total,
                max: max_len,
            },
        }));
    }
    Ok(total - HEADER_LEN)
}

/// Writes one encoded message and flushes.
pub async fn write_message<W>(writer: &mut W, message: &[u8]) -> Result<(), Error>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    writer
        .write_all(message)
        .await
        .map_err(|e| Error::io("writing a message", e))?;
    writer
        .flush()
        .await
        .map_err(|e| Error::io("writing a message", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: [u8; 3], item_type: u8, len: u32, body: &[u8]) -> Vec<u8> {
        let mut v = tag.to_vec();
        v.push(item_type);
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[tokio::test]
    async fn accepts_one_message_and_leaves_the_next() {
        let mut bytes = frame([0x42, 0x00, 0x78], 1, 8, &[0xaa; 8]);
        bytes.extend(frame([0x42, 0x00, 0x78], 1, 0, &[]));
        let mut r = &bytes[..];
        let first = read_message(&mut r, 1024).await.unwrap().unwrap();
        assert_eq!(first.len(), 16);
        let second = read_message(&mut r, 1024).await.unwrap().unwrap();
        assert_eq!(second.len(), 8);
        assert!(read_message(&mut r, 1024).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn rejects_oversized_length_before_reading_body() {
        let bytes = frame([0x42, 0x00, 0x78], 1, 0xffff_fff8, &[]);
        let mut r = &bytes[..];
        let err = read_message(&mut r, 1 << 20).await.unwrap_err();
        assert!(
            matches!(
                &err,
                Error::Decode(DecodeError {
                    kind: DecodeErrorKind::TooLarge { .. },
                    ..
                })
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn rejects_non_structure_and_unaligned_length() {
        let bytes = frame([0x42, 0x00, 0x78], 2, 8, &[0; 8]);
        assert!(matches!(
            read_message(&mut &bytes[..], 1024).await,
            Err(Error::Frame { .. })
        ));
        let bytes = frame([0x42, 0x00, 0x78], 1, 5, &[0; 5]);
        assert!(matches!(
            read_message(&mut &bytes[..], 1024).await,
            Err(Error::Decode(_))
        ));
    }

    #[tokio::test]
    async fn rejects_truncated_header_and_body() {
        let bytes = [0x42, 0x00, 0x78, 0x01];
        assert!(matches!(
            read_message(&mut &bytes[..], 1024).await,
            Err(Error::Io { .. })
        ));
        let bytes = frame([0x42, 0x00, 0x78], 1, 16, &[0; 8]);
        assert!(matches!(
            read_message(&mut &bytes[..], 1024).await,
            Err(Error::Io { .. })
        ));
    }
}
