//! tonic codecs for OTLP payloads that stay encoded (see `pipeline::wire`): the `otlp`
//! receiver's trace service takes a request as its bytes, and the `otlp` exporter puts a batch's
//! chunks on the wire as they are. Responses are small and go through prost either way.

use std::marker::PhantomData;

use bytes::{Buf, BufMut, Bytes};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic_prost::{ProstDecoder, ProstEncoder};

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

/// Client side: the request as encoded chunks written one after the other, the response
/// decoded by prost.
pub struct RawClientCodec<Resp>(PhantomData<Resp>);

impl<Resp> Default for RawClientCodec<Resp> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<Resp: prost::Message + Default + Send + 'static> Codec for RawClientCodec<Resp> {
    type Encode = Vec<Bytes>;
    type Decode = Resp;
    type Encoder = ChunksEncoder;
    type Decoder = ProstDecoder<Resp>;

    fn encoder(&mut self) -> Self::Encoder {
        ChunksEncoder
    }
    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::default()
    }
}

/// Writes the chunks of an encoded request; their concatenation is the message.
pub struct ChunksEncoder;

impl Encoder for ChunksEncoder {
    type Item = Vec<Bytes>;
    type Error = Status;

    fn encode(&mut self, item: Vec<Bytes>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        for c in item {
            dst.put_slice(&c);
        }
        Ok(())
    }
}
