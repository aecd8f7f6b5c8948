//! The transfer protocol's codec for libp2p request-response: length-prefixed canonical CBOR,
//! with raw chunk bytes after a `Chunks` response header (see `lien_protocol::wire`).

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use lien_protocol::wire::{Request, Response, MAX_CHUNKS_PAYLOAD, MAX_REQUEST_LEN, MAX_RESPONSE_LEN};

/// A response with the chunk bytes that follow a `Chunks` header (empty otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferResponse {
    /// The CBOR header.
    pub header: Response,
    /// Raw chunk bytes for `Response::Chunks`.
    pub payload: Vec<u8>,
}

impl TransferResponse {
    /// A response without payload.
    pub fn plain(header: Response) -> Self {
        Self { header, payload: Vec::new() }
    }
}

/// Codec for `/lien/<network>/transfer/1`.
#[derive(Debug, Clone, Default)]
pub struct TransferCodec;

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, limit: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > limit {
        return Err(invalid(format!("frame of {len} bytes is over the limit of {limit}")));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(invalid)?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(bytes).await
}

impl libp2p::request_response::Codec for TransferCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = TransferResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_frame(io, MAX_REQUEST_LEN).await?;
        Request::decode(&bytes).map_err(invalid)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<TransferResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_frame(io, MAX_RESPONSE_LEN).await?;
        let header = Response::decode(&bytes).map_err(invalid)?;
        let payload = match &header {
            Response::Chunks { len, .. } if *len <= MAX_CHUNKS_PAYLOAD => {
                let mut payload = vec![0u8; *len as usize];
                io.read_exact(&mut payload).await?;
                payload
            }
            Response::Chunks { .. } => return Err(invalid("chunk payload over the limit")),
            _ => Vec::new(),
        };
        Ok(TransferResponse { header, payload })
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: Request) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req.encode().map_err(invalid)?).await?;
        io.close().await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, res: TransferResponse) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res.header.encode().map_err(invalid)?).await?;
        if !res.payload.is_empty() {
            io.write_all(&res.payload).await?;
        }
        io.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;
    use libp2p::request_response::Codec;

    fn protocol() -> StreamProtocol {
        StreamProtocol::new("/lien/test/transfer/1")
    }

    #[tokio::test]
    async fn oversized_frames_are_refused_before_anything_is_allocated() {
        // A length prefix claiming 4 GiB, with nothing behind it: refused on the prefix alone.
        let mut io = Cursor::new(u32::MAX.to_be_bytes().to_vec());
        let e = TransferCodec.read_request(&protocol(), &mut io).await.unwrap_err();
        assert!(e.to_string().contains("over the limit"), "{e}");
        let mut io = Cursor::new(u32::MAX.to_be_bytes().to_vec());
        let e = TransferCodec.read_response(&protocol(), &mut io).await.unwrap_err();
        assert!(e.to_string().contains("over the limit"), "{e}");
        // A valid Chunks header announcing a payload over the limit: refused before reading it.
        let header = Response::Chunks { first: 0, count: 1, len: MAX_CHUNKS_PAYLOAD + 1 }.encode().unwrap();
        let mut bytes = (header.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&header);
        let e = TransferCodec.read_response(&protocol(), &mut Cursor::new(bytes)).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn requests_and_chunk_responses_round_trip() {
        let req = Request::Chunks { file: lien_protocol::ContentId::of(b"f"), first: 2, count: 3 };
        let mut buf = Vec::new();
        TransferCodec.write_request(&protocol(), &mut Cursor::new(&mut buf), req.clone()).await.unwrap();
        assert_eq!(TransferCodec.read_request(&protocol(), &mut Cursor::new(buf)).await.unwrap(), req);
        let res =
            TransferResponse { header: Response::Chunks { first: 2, count: 3, len: 5 }, payload: b"abcde".to_vec() };
        let mut buf = Vec::new();
        TransferCodec.write_response(&protocol(), &mut Cursor::new(&mut buf), res.clone()).await.unwrap();
        assert_eq!(TransferCodec.read_response(&protocol(), &mut Cursor::new(buf)).await.unwrap(), res);
    }
}
