//! The tonic codec for OTLP payloads that stay encoded (see `pipeline::wire`): the `otlp`
//! receiver's trace service takes each request as its bytes. Responses are small and go through
//! prost. (The `otlp` exporter frames its encoded batches itself, see its transport.)

use std::marker::PhantomData;

use bytes::{Buf, Bytes};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

/// Server side: the request as bytes, the response encoded by prost.
pub struct RawRequestCodec<Resp>(PhantomData<Resp>);

impl<Resp> Default for RawRequestCodec<Resp> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<Resp: prost::Message + Send + 'static> Codec for RawRequestCodec<Resp> {
    type Encode = Resp;
    type Decode = Bytes;
    type Encoder = ProstEncoder<Resp>;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }
    fn decoder(&mut self) -> Self::Decoder {
        BytesDecoder
    }
}

/// A whole (already decompressed) gRPC message as `Bytes`.
pub struct BytesDecoder;

impl Decoder for BytesDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
