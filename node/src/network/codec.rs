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
