//! The protobuf codec of every aliasd service: tonic-prost's, except that a
//! request that is not valid protobuf (bad UTF-8 included) is
//! INVALID_ARGUMENT (MALFORMED_REQUEST) with the usual error details, rather
//! than INTERNAL. (Over-large messages are refused by tonic before decoding;
//! [`crate::layers`] gives them the same treatment.)

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::ProstEncoder;

use crate::domain::{Error, Reason};

/// Largest request message decoded, in bytes.
pub const MAX_MESSAGE_BYTES: usize = crate::door::MAX_REQUEST_BYTES;

#[derive(Debug, Clone)]
pub struct StrictProstCodec<T, U> {
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for StrictProstCodec<T, U> {
    fn default() -> Self {
        StrictProstCodec {
            _types: PhantomData,
        }
    }
}

impl<T, U> Codec for StrictProstCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrictDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder { _type: PhantomData }
    }
}

#[derive(Debug, Clone)]
pub struct StrictDecoder<U> {
    _type: PhantomData<U>,
}

impl<U: Message + Default> Decoder for StrictDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|error| {
            crate::grpc::status(Error::new(
                Reason::MALFORMED_REQUEST,
                format!("The request is not a valid protobuf message: {error}."),
            ))
        })
    }
}
